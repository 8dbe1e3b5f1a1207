//! The helpers against what WireMock 3.13 wrote for the same templates.

use serde_json::json;

use super::super::respond::render;

fn r(template: &str) -> String {
    render(template, &json!({"request": {"body": r#"{"o":{"a":1,"b":[1,2]},"l":[1,"x"]}"#, "query": {}}})).unwrap()
}

#[test]
fn strings_and_numbers_as_wiremock_writes_them() {
    assert_eq!(
        r("{{upper 'abc'}}|{{lower 'ABC'}}|{{size 'abcd'}}|{{capitalize 'hello wORLD'}}|{{capitalizeFirst 'abc def'}}|{{trim '  x  '}}"),
        "ABC|abc|4|Hello WORLD|Abc def|x"
    );
    assert_eq!(
        r("{{math 1 '+' 2}}|{{math 10 '/' 4}}|{{math 9 '/' 4}}|{{math -10 '/' 4}}|{{math 1 '/' 3}}|{{math 7 '%' 3}}"),
        "3|3|2|-3|0|1"
    );
    assert_eq!(r("{{math 2 '*' 3.5}}|{{math 2.5 '+' 1}}|{{math '3' '*' '4'}}|{{math 10 '-' 2.5}}|{{math 5 '-' 7}}"), "7.0|3.5|12|7.5|-2");
    assert_eq!(
        r("{{substring 'abcdef' 1 3}}|{{replace 'aXbX' 'X' 'Y'}}|{{abbreviate 'hello world' 8}}|{{defaultIfEmpty '' 'nothing'}}"),
        "bc|aYbY|hello...|nothing"
    );
    assert_eq!(r("{{stringFormat '%s-%d' 'a' 3}}|{{stringFormat '%05d|%.2f|%x' 42 3.14159 255}}|{{yesno true}}"), "a-3|00042|3.14|ff|yes");
    assert_eq!(r("{{base64 'hi'}}|{{base64 'aGk=' decode=true}}|{{urlEncode 'a b'}}|{{urlEncode 'a+b' decode=true}}"), "aGk=|hi|a+b|a b");
    assert_eq!(
        r("{{regexExtract 'abc123def' '[0-9]+'}}|{{contains 'abc' 'b'}}|{{neq 1 2}}|{{#if (matches 'abc' '[a-c]+')}}M{{/if}}"),
        "123|true|true|M"
    );
    assert!(render("{{math 1 '^' 2}}", &json!({})).unwrap_err().contains("unknown operator"));
}

#[test]
fn lists_and_json_as_wiremock_writes_them() {
    assert_eq!(
        r("{{#each (range 1 3)}}{{this}},{{/each}}|{{join (array 1 2 3) ','}}|{{array 1 'b'}}|{{parseJson '{\"a\":1}'}}"),
        "1,2,3,|1,2,3|[1, b]|{a=1}"
    );
    assert_eq!(
        r("{{size (parseJson '[1,2,3]')}}|{{#with (parseJson '{\"a\":1}')}}{{a}}{{/with}}|{{#if (contains (array 'x' 'y') 'y')}}Y{{/if}}"),
        "3|1|Y"
    );
    assert_eq!(r("{{toJson (parseJson '{\"a\":[1,2]}')}}"), "{\n  \"a\" : [ 1, 2 ]\n}");
    assert_eq!(r("{{toJson (array (parseJson '{\"a\":1}') 2)}}"), "[ {\n  \"a\" : 1\n}, 2 ]");
    assert_eq!(
        r("{{jsonPath request.body '$.o'}}|{{jsonPath request.body '$.l'}}|{{size request.body}}"),
        "{\n  \"a\" : 1,\n  \"b\" : [ 1, 2 ]\n}|[1,\"x\"]|35"
    );
    assert_eq!(r("{{val request.query.missing default='dflt'}}|{{xPath '<a><b>x</b></a>' '/a/b/text()'}}"), "dflt|x");
}

#[test]
fn dates_as_wiremock_writes_them() {
    assert_eq!(
        r("{{parseDate '2021-06-14T00:00:00Z'}}|{{date (parseDate '2021-06-14T00:00:00Z') offset='1 days' format='yyyy-MM-dd'}}"),
        "2021-06-14T00:00:00Z|2021-06-15"
    );
    assert_eq!(
        r(
            "{{date (parseDate '14/06/2021' format='dd/MM/yyyy') format='yyyy-MM-dd'}}|{{date (parseDate '1623628800' format='unix') format='yyyy-MM-dd'}}"
        ),
        "2021-06-14|2021-06-14"
    );
    let now = chrono::Utc::now();
    let iso = r("{{now}}");
    assert_eq!(iso.len(), "2026-12-02T18:09:48Z".len(), "{iso}");
    let at = chrono::DateTime::parse_from_rfc3339(&iso).unwrap();
    assert!((at.timestamp() - now.timestamp()).abs() <= 2, "{iso}");
    let epoch: i64 = r("{{now format='epoch'}}").parse().unwrap();
    assert!((epoch - now.timestamp_millis()).abs() < 2_000);
    let (today, later) = (now.format("%Y-%m-%d").to_string(), (now + chrono::TimeDelta::days(3)).format("%Y-%m-%d").to_string());
    let shown = r("{{now format='yyyy-MM-dd'}}|{{now offset='3 days' format='yyyy-MM-dd'}}");
    assert!(shown == format!("{today}|{later}") || chrono::Utc::now().date_naive() != now.date_naive(), "{shown}");
    assert!(render("{{now offset='soon'}}", &json!({})).unwrap_err().contains("bad date offset"));
}
