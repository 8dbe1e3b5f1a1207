//! WireMock's value matchers — `equalTo` (with `caseInsensitive`),
//! `contains`, `matches`, `doesNotMatch`, `absent`, `equalToJson` (with
//! `ignoreArrayOrder`, `ignoreExtraElements`), `matchesJsonPath`,
//! `equalToXml`, `matchesXPath` (with `xPathNamespaces`) and `and`/`or`
//! — parsed from a mapping's JSON and applied to a value that may be
//! missing; and `hasExactly`/`includes`, applied to every value a query
//! parameter, header or form parameter has. Each can also say how far a value is from matching
//! (0 a match, 1 nothing alike), for the near-miss report.

use regex::bytes::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

#[derive(Debug, Clone)]
pub enum Matcher {
    EqualTo {
        value: String,
        case_insensitive: bool,
    },
    Contains(String),
    Matches(Regex),
    DoesNotMatch(Regex),
    Absent,
    EqualToJson {
        json: Value,
        ignore_array_order: bool,
        ignore_extra: bool,
    },
    /// A JSONPath: matches when it selects something (and, with a
    /// matcher, something that matcher matches).
    MatchesJsonPath {
        path: JsonPath,
        then: Option<Box<Matcher>>,
    },
    /// The same XML document (see [`super::xml`]).
    EqualToXml(String),
    /// An XPath that selects something (and, with a matcher, something
    /// that matcher matches), with the namespaces its prefixes name.
    MatchesXPath {
        expr: String,
        namespaces: Vec<(String, String)>,
        then: Option<Box<Matcher>>,
    },
    And(Vec<Matcher>),
    Or(Vec<Matcher>),
    /// Every value matched, one matcher each, and no other value.
    HasExactly(Vec<Matcher>),
    /// Each matcher matches one of the values.
    Includes(Vec<Matcher>),
}

impl Matcher {
    /// Parses `{"equalTo": "x", "caseInsensitive": true}` and its kin.
    pub fn parse(v: &Value) -> Result<Matcher, String> {
        let Some(obj) = v.as_object() else {
            return Err(format!("expected a matcher object such as {{\"equalTo\": ...}}, found {v}"));
        };
        let text = |key: &str| -> Result<String, String> {
            obj[key].as_str().map(str::to_string).ok_or_else(|| format!("`{key}` needs a string, found {}", obj[key]))
        };
        let regex = |key: &str| -> Result<Regex, String> {
            let pattern = text(key)?;
            pattern_of(&pattern).map_err(|e| format!("`{key}`: {e}"))
        };
        let flag = |key: &str| obj.get(key).and_then(Value::as_bool).unwrap_or(false);
        let list = |key: &str| -> Result<Vec<Matcher>, String> {
            obj[key].as_array().ok_or_else(|| format!("`{key}` needs a list of matchers"))?.iter().map(Matcher::parse).collect()
        };
        const MODIFIERS: [&str; 4] = ["caseInsensitive", "ignoreArrayOrder", "ignoreExtraElements", "xPathNamespaces"];
        let Some(kind) = obj.keys().find(|k| !MODIFIERS.contains(&k.as_str())) else {
            return Err("a matcher needs one of equalTo, contains, matches, doesNotMatch, absent, equalToJson, matchesJsonPath, \
                 equalToXml, matchesXPath, and, or, hasExactly, includes"
                .into());
        };
        let namespaces = || -> Result<Vec<(String, String)>, String> {
            match obj.get("xPathNamespaces") {
                None => Ok(Vec::new()),
                Some(Value::Object(m)) => Ok(m.iter().map(|(k, v)| (k.clone(), as_text(v))).collect()),
                Some(other) => Err(format!("`xPathNamespaces` needs an object of prefix: URI, found {other}")),
            }
        };
        Ok(match kind.as_str() {
            "equalTo" => Matcher::EqualTo { value: text("equalTo")?, case_insensitive: flag("caseInsensitive") },
            "contains" => Matcher::Contains(text("contains")?),
            "matches" => Matcher::Matches(regex("matches")?),
            "doesNotMatch" => Matcher::DoesNotMatch(regex("doesNotMatch")?),
            "absent" => Matcher::Absent,
            "equalToJson" => {
                let json = match &obj["equalToJson"] {
                    Value::String(s) => serde_json::from_str(s).map_err(|e| format!("`equalToJson` is not JSON: {e}"))?,
                    other => other.clone(),
                };
                Matcher::EqualToJson { json, ignore_array_order: flag("ignoreArrayOrder"), ignore_extra: flag("ignoreExtraElements") }
            }
            "matchesJsonPath" => match &obj["matchesJsonPath"] {
                Value::String(path) => Matcher::MatchesJsonPath { path: parse_path(path)?, then: None },
                Value::Object(o) => {
                    let path = o.get("expression").and_then(Value::as_str).ok_or("`matchesJsonPath` needs an `expression`")?;
                    let rest: serde_json::Map<String, Value> =
                        o.iter().filter(|(k, _)| *k != "expression").map(|(k, v)| (k.clone(), v.clone())).collect();
                    Matcher::MatchesJsonPath { path: parse_path(path)?, then: Some(Box::new(Matcher::parse(&Value::Object(rest))?)) }
                }
                other => return Err(format!("`matchesJsonPath` needs a path or an object, found {other}")),
            },
            "equalToXml" => {
                let xml = text("equalToXml")?;
                super::xml::check_document(&xml).map_err(|e| format!("`equalToXml`: {e}"))?;
                Matcher::EqualToXml(xml)
            }
            "matchesXPath" => {
                let (expr, then) = match &obj["matchesXPath"] {
                    Value::String(expr) => (expr.clone(), None),
                    Value::Object(o) => {
                        let expr = o.get("expression").and_then(Value::as_str).ok_or("`matchesXPath` needs an `expression`")?;
                        let rest: serde_json::Map<String, Value> =
                            o.iter().filter(|(k, _)| *k != "expression").map(|(k, v)| (k.clone(), v.clone())).collect();
                        (expr.to_string(), Some(Box::new(Matcher::parse(&Value::Object(rest))?)))
                    }
                    other => return Err(format!("`matchesXPath` needs an expression or an object, found {other}")),
                };
                super::xml::check_xpath(&expr)?;
                Matcher::MatchesXPath { expr, namespaces: namespaces()?, then }
            }
            "and" => Matcher::And(list("and")?),
            "or" => Matcher::Or(list("or")?),
            "hasExactly" => Matcher::HasExactly(list("hasExactly")?),
            "includes" => Matcher::Includes(list("includes")?),
            other => return Err(format!("unknown matcher `{other}`")),
        })
    }

    /// Whether `value` (None: absent) matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        self.distance(value) == 0.0
    }

    /// How far the values one name has (a query parameter, a header) are
    /// from matching: `hasExactly` and `includes` look at them all; any
    /// other matcher is met when one of them matches (or, with none, when
    /// an absent value does).
    pub fn distance_all(&self, values: &[&str]) -> f64 {
        let by_one = |ms: &[Matcher], used: &mut Vec<bool>| {
            ms.iter().all(|m| match values.iter().enumerate().find(|(i, v)| !used[*i] && m.matches(Some(v))) {
                Some((i, _)) => {
                    used[i] = true;
                    true
                }
                None => false,
            })
        };
        match self {
            Matcher::HasExactly(ms) => {
                if values.len() == ms.len() && by_one(ms, &mut vec![false; values.len()]) {
                    0.0
                } else {
                    1.0
                }
            }
            Matcher::Includes(ms) => {
                if ms.iter().all(|m| values.iter().any(|v| m.matches(Some(v)))) {
                    0.0
                } else {
                    1.0
                }
            }
            _ if values.is_empty() => self.distance(None),
            _ => values.iter().map(|v| self.distance(Some(v))).fold(1.0, f64::min),
        }
    }

    /// How far `value` is from matching: 0 for a match, up to 1.
    pub fn distance(&self, value: Option<&str>) -> f64 {
        let Some(v) = value else {
            return match self {
                Matcher::Absent => 0.0,
                Matcher::Or(ms) => ms.iter().map(|m| m.distance(None)).fold(1.0, f64::min),
                Matcher::And(ms) => ms.iter().map(|m| m.distance(None)).fold(0.0, f64::max),
                _ => 1.0,
            };
        };
        let hit = |b: bool| -> f64 { if b { 0.0 } else { 1.0 } };
        match self {
            Matcher::EqualTo { value, case_insensitive: true } => {
                hit(value.eq_ignore_ascii_case(v)).min(text_distance(&value.to_lowercase(), &v.to_lowercase()))
            }
            Matcher::EqualTo { value, .. } => text_distance(value, v),
            Matcher::Contains(part) => hit(v.contains(part.as_str())),
            Matcher::Matches(re) => hit(re.is_match(v.as_bytes())),
            Matcher::DoesNotMatch(re) => hit(!re.is_match(v.as_bytes())),
            Matcher::Absent => 1.0,
            Matcher::EqualToJson { json, ignore_array_order, ignore_extra } => match serde_json::from_str::<Value>(v) {
                Ok(actual) => hit(json_equal(json, &actual, *ignore_array_order, *ignore_extra)),
                Err(_) => 1.0,
            },
            Matcher::MatchesJsonPath { path, then } => {
                let Ok(doc) = serde_json::from_str::<Value>(v) else { return 1.0 };
                let found = select(&doc, path);
                hit(match then {
                    None => !found.is_empty(),
                    Some(m) => found.iter().any(|f| m.matches(Some(&as_text(f)))),
                })
            }
            Matcher::EqualToXml(xml) => hit(super::xml::equal(xml, v)),
            Matcher::MatchesXPath { expr, namespaces, then } => {
                let found = super::xml::select(expr, namespaces, v);
                hit(match (found, then) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(values), Some(m)) => values.iter().any(|f| m.matches(Some(f))),
                })
            }
            Matcher::And(ms) => ms.iter().map(|m| m.distance(Some(v))).fold(0.0, f64::max),
            Matcher::Or(ms) => ms.iter().map(|m| m.distance(Some(v))).fold(1.0, f64::min),
            Matcher::HasExactly(_) | Matcher::Includes(_) => self.distance_all(&[v]),
        }
    }

    /// What the matcher expects, as the near-miss report shows it.
    pub fn describe(&self) -> String {
        match self {
            Matcher::EqualTo { value, case_insensitive: true } => format!("{value} [equalTo, caseInsensitive]"),
            Matcher::EqualTo { value, .. } => value.clone(),
            Matcher::Contains(s) => format!("{s} [contains]"),
            Matcher::Matches(re) => format!("{} [matches]", unanchored(re)),
            Matcher::DoesNotMatch(re) => format!("{} [doesNotMatch]", unanchored(re)),
            Matcher::Absent => "[absent]".into(),
            Matcher::EqualToJson { json, .. } => format!("{json} [equalToJson]"),
            Matcher::MatchesJsonPath { path, then: None } => format!("{path} [matchesJsonPath]"),
            Matcher::MatchesJsonPath { path, then: Some(m) } => format!("{path} [matchesJsonPath] {}", m.describe()),
            Matcher::EqualToXml(xml) => format!("{xml} [equalToXml]"),
            Matcher::MatchesXPath { expr, then: None, .. } => format!("{expr} [matchesXPath]"),
            Matcher::MatchesXPath { expr, then: Some(m), .. } => format!("{expr} [matchesXPath] {}", m.describe()),
            Matcher::And(ms) => ms.iter().map(Matcher::describe).collect::<Vec<_>>().join(" AND "),
            Matcher::Or(ms) => ms.iter().map(Matcher::describe).collect::<Vec<_>>().join(" OR "),
            Matcher::HasExactly(ms) => format!("[hasExactly] {}", ms.iter().map(Matcher::describe).collect::<Vec<_>>().join(", ")),
            Matcher::Includes(ms) => format!("[includes] {}", ms.iter().map(Matcher::describe).collect::<Vec<_>>().join(", ")),
        }
    }
}

fn unanchored(re: &Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix(ANCHOR).and_then(|s| s.strip_suffix(")$")).unwrap_or(s)
}

/// How a pattern is wrapped: it must match the whole value, as WireMock's
/// (Java's) do, and classes such as `\d` and `\w` are ASCII, as Java's are
/// by default (which also spares every process the Unicode tables).
const ANCHOR: &str = "(?-u)^(?:";

/// A WireMock pattern, compiled.
pub fn pattern_of(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("{ANCHOR}{pattern})$")).map_err(|e| format!("bad pattern `{pattern}`: {e}"))
}

/// 0 for equal strings, else between 0.1 and 1 by how much of the longer
/// one differs (a normalised edit distance, cheap for short values).
pub fn text_distance(a: &str, b: &str) -> f64 {
    if a == b {
        return 0.0;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let longest = a.len().max(b.len());
    if longest > 2_000 {
        return 1.0;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    (row[b.len()] as f64 / longest as f64).max(0.1)
}

/// JSON equality with WireMock's two relaxations.
fn json_equal(expected: &Value, actual: &Value, ignore_order: bool, ignore_extra: bool) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            (ignore_extra || e.len() == a.len())
                && e.iter().all(|(k, v)| a.get(k).is_some_and(|av| json_equal(v, av, ignore_order, ignore_extra)))
        }
        (Value::Array(e), Value::Array(a)) if ignore_order => {
            if !ignore_extra && e.len() != a.len() {
                return false;
            }
            let mut used = vec![false; a.len()];
            e.iter().all(|ev| {
                let found = a.iter().enumerate().find(|(i, av)| !used[*i] && json_equal(ev, av, ignore_order, ignore_extra));
                found.map(|(i, _)| used[i] = true).is_some()
            })
        }
        (Value::Array(e), Value::Array(a)) => {
            (ignore_extra && e.len() <= a.len() || e.len() == a.len())
                && e.iter().zip(a).all(|(ev, av)| json_equal(ev, av, ignore_order, ignore_extra))
        }
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        _ => expected == actual,
    }
}

/// A JSON value as text for a nested matcher: strings without quotes.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses a JSONPath expression (RFC 9535, as WireMock's Jayway paths
/// mostly are).
fn parse_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| format!("bad JSONPath `{path}`: {e}"))
}

/// The values a JSONPath selects in `doc`.
pub fn select<'a>(doc: &'a Value, path: &JsonPath) -> Vec<&'a Value> {
    path.query(doc).all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Matcher {
        Matcher::parse(&v).unwrap()
    }

    #[test]
    fn each_matcher_matches_and_misses() {
        let cases = [
            (json!({"equalTo": "abc"}), "abc", "abd"),
            (json!({"equalTo": "ABC", "caseInsensitive": true}), "abc", "abd"),
            (json!({"contains": "ell"}), "hello", "help"),
            (json!({"matches": "[a-z]+[0-9]"}), "abc1", "abc12"),
            (json!({"matches": "\\w+-\\d{2}"}), "ab_c-42", "ab-4x"),
            (json!({"doesNotMatch": "secret.*"}), "public", "secret-x"),
            (json!({"equalToJson": "{\"a\": 1, \"b\": [1, 2]}"}), "{\"b\":[1,2],\"a\":1.0}", "{\"a\":1,\"b\":[2,1]}"),
            (json!({"equalToJson": {"b": [1, 2]}, "ignoreArrayOrder": true}), "{\"b\":[2,1]}", "{\"b\":[2,3]}"),
            (json!({"equalToJson": {"a": 1}, "ignoreExtraElements": true}), "{\"a\":1,\"z\":0}", "{\"z\":0}"),
            (json!({"matchesJsonPath": "$.items[0].id"}), "{\"items\":[{\"id\":7}]}", "{\"items\":[]}"),
            (json!({"matchesJsonPath": {"expression": "$.name", "contains": "o"}}), "{\"name\":\"bob\"}", "{\"name\":\"al\"}"),
            (json!({"and": [{"contains": "a"}, {"contains": "b"}]}), "ab", "a"),
            (json!({"or": [{"equalTo": "a"}, {"equalTo": "b"}]}), "b", "c"),
            (json!({"equalToXml": "<a><b>1</b></a>"}), "<a>\n  <b>1</b>\n</a>", "<a><b>2</b></a>"),
            (json!({"matchesXPath": "/a[count(b) = 2]"}), "<a><b/><b/></a>", "<a><b/></a>"),
            (json!({"matchesXPath": {"expression": "//b/text()", "contains": "as"}}), "<a><b>wash</b></a>", "<a><b>dry</b></a>"),
            (json!({"matchesXPath": "//n:b", "xPathNamespaces": {"n": "urn:x"}}), "<a xmlns:m=\"urn:x\"><m:b/></a>", "<a><b/></a>"),
        ];
        for (spec, hit, miss) in cases {
            let matcher = m(spec.clone());
            assert!(matcher.matches(Some(hit)), "{spec} should match {hit}");
            assert!(!matcher.matches(Some(miss)), "{spec} should not match {miss}");
            assert!(!matcher.matches(None) || matches!(matcher, Matcher::Absent), "{spec} on an absent value");
        }
        assert!(m(json!({"absent": true})).matches(None) && !m(json!({"absent": true})).matches(Some("")));
    }

    #[test]
    fn has_exactly_and_includes_look_at_every_value() {
        let exactly = m(json!({"hasExactly": [{"equalTo": "1"}, {"matches": "[23]"}]}));
        assert_eq!(exactly.distance_all(&["3", "1"]), 0.0);
        assert_eq!(exactly.distance_all(&["1", "2", "3"]), 1.0);
        assert_eq!(exactly.distance_all(&["1"]), 1.0);
        let includes = m(json!({"includes": [{"equalTo": "1"}]}));
        assert_eq!(includes.distance_all(&["2", "1", "9"]), 0.0);
        assert_eq!(includes.distance_all(&["2"]), 1.0);
        assert_eq!(includes.distance_all(&[]), 1.0);
        assert_eq!(m(json!({"equalTo": "2"})).distance_all(&["1", "2"]), 0.0);
    }

    #[test]
    fn bad_matchers_say_what_is_wrong() {
        assert!(Matcher::parse(&json!({"equalToXml": "<a>"})).unwrap_err().contains("not XML"));
        assert!(Matcher::parse(&json!({"matchesXPath": "//["})).unwrap_err().contains("bad XPath"));
        assert_eq!(Matcher::parse(&json!({"equalsTo": "x"})).unwrap_err(), "unknown matcher `equalsTo`");
        assert!(Matcher::parse(&json!({"matches": "("})).unwrap_err().contains("bad pattern"));
        assert!(Matcher::parse(&json!({"matchesJsonPath": "items"})).unwrap_err().contains("bad JSONPath"));
    }

    #[test]
    fn distances_order_near_misses() {
        assert_eq!(text_distance("/api/users", "/api/users"), 0.0);
        assert!(text_distance("/api/users", "/api/user") < text_distance("/api/users", "/totally/else"));
    }
}
