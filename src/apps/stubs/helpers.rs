//! WireMock's response-template helpers, beside Handlebars' own (`if`,
//! `unless`, `each`, `with`, `lookup`, `eq`, `gt`, `and`, `or`, `not`, …):
//! dates (`now`, `date`, `parseDate`), JSON (`jsonPath`, `parseJson`,
//! `toJson`, `formatJson`), numbers (`math`, `randomInt`, `randomDecimal`),
//! strings (`upper`, `lower`, `capitalize`, `trim`, `substring`, `replace`,
//! `abbreviate`, `stringFormat`, `regexExtract`, `base64`, `urlEncode`, …),
//! lists (`array`, `range`, `join`, `size`, `contains`, `pickRandom`),
//! `xPath`, `val`, `randomValue` and `hostname`, each written as WireMock
//! writes it (checked side by side with WireMock 3).
//!
//! Every helper makes a value, so it works both alone (`{{math 1 '+' 2}}`)
//! and inside another (`{{size (parseJson request.body)}}`); used as a block
//! (`{{#contains a b}}…{{else}}…{{/contains}}`) its value chooses the branch.

use base64::Engine;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::{Number, Value};

use super::dates::{self, Zoned};
use super::matcher::as_text;

/// What a helper made: a value, a JSON document as `jsonPath` shows it, or
/// a date.
enum Made {
    Value(Value),
    Json(Value),
    Date(Zoned),
}

type Fun = fn(&Helper<'_>) -> Result<Made, String>;

struct Helps(Fun);

impl Helps {
    /// The helper's value, or its error naming the helper.
    fn made(&self, h: &Helper<'_>) -> Result<Made, RenderError> {
        (self.0)(h).map_err(|e| RenderErrorReason::Other(format!("{}: {e}", h.name())).into())
    }
}

impl HelperDef for Helps {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = match self.made(h)? {
            Made::Value(v) | Made::Json(v) => v,
            Made::Date(d) => Value::String(d.precise()),
        };
        Ok(ScopedJson::Derived(value))
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let made = self.made(h)?;
        if let Some(block) = h.template() {
            let yes = matches!(&made, Made::Value(v) | Made::Json(v) if truthy(v)) || matches!(made, Made::Date(_));
            return match (yes, h.inverse()) {
                (true, _) => block.render(r, ctx, rc, out),
                (false, Some(other)) => other.render(r, ctx, rc, out),
                (false, None) => Ok(()),
            };
        }
        let text = match made {
            Made::Value(v) => java_text(&v),
            Made::Json(Value::Object(o)) => jackson(&Value::Object(o), 0),
            Made::Json(v @ Value::Array(_)) => v.to_string(),
            Made::Json(v) => as_text(&v),
            Made::Date(d) => d.iso(),
        };
        out.write(&text)?;
        Ok(())
    }
}

/// Adds WireMock's helpers to `hb`.
pub fn register(hb: &mut Handlebars<'_>) {
    let all: [(&str, Fun); 38] = [
        ("now", now),
        ("date", date),
        ("parseDate", parse_date),
        ("jsonPath", json_path),
        ("parseJson", |h| serde_json::from_str(&text(h, 0)).map(Made::Value).map_err(|e| format!("not JSON: {e}"))),
        ("toJson", |h| Ok(Made::Value(Value::String(jackson(&arg(h, 0), 0))))),
        ("formatJson", format_json),
        ("math", math),
        ("size", size),
        ("upper", |h| Ok(string(text(h, 0).to_uppercase()))),
        ("lower", |h| Ok(string(text(h, 0).to_lowercase()))),
        ("capitalize", |h| Ok(string(text(h, 0).split(' ').map(capital).collect::<Vec<_>>().join(" ")))),
        ("capitalizeFirst", |h| Ok(string(capital(&text(h, 0))))),
        ("trim", |h| Ok(string(text(h, 0).trim().to_string()))),
        ("abbreviate", abbreviate),
        ("defaultIfEmpty", |h| Ok(Made::Value(if truthy(&arg(h, 0)) { arg(h, 0) } else { arg(h, 1) }))),
        ("substring", substring),
        ("replace", |h| Ok(string(text(h, 0).replace(&text(h, 1), &text(h, 2))))),
        ("stringFormat", string_format),
        ("yesno", yes_no),
        ("regexExtract", regex_extract),
        ("matches", |h| Ok(Made::Value(Value::Bool(regex(&text(h, 1))?.is_match(text(h, 0).as_bytes()))))),
        ("contains", contains),
        ("base64", base64),
        ("urlEncode", url_encode),
        ("array", |h| Ok(Made::Value(Value::Array(h.params().iter().map(|p| p.value().clone()).collect())))),
        ("range", range),
        ("join", join),
        ("pickRandom", pick_random),
        ("val", |h| Ok(Made::Value(if arg(h, 0).is_null() { hash(h, "default").unwrap_or(Value::Null) } else { arg(h, 0) }))),
        ("neq", |h| Ok(Made::Value(Value::Bool(arg(h, 0) != arg(h, 1))))),
        ("randomValue", random_value),
        ("randomInt", random_int),
        ("randomDecimal", random_decimal),
        ("xPath", |h| Ok(string(super::xml::select(&text(h, 1), &[], &text(h, 0)).and_then(|v| v.into_iter().next()).unwrap_or_default()))),
        ("hostname", |_| Ok(string(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()))),
        ("isOdd", |h| Ok(Made::Value(Value::Bool(number(&arg(h, 0))?.as_i64().is_some_and(|n| n % 2 != 0))))),
        ("isEven", |h| Ok(Made::Value(Value::Bool(number(&arg(h, 0))?.as_i64().is_some_and(|n| n % 2 == 0))))),
    ];
    for (name, fun) in all {
        hb.register_helper(name, Box::new(Helps(fun)));
    }
}

fn arg(h: &Helper<'_>, i: usize) -> Value {
    h.param(i).map(|p| p.value().clone()).unwrap_or(Value::Null)
}

fn text(h: &Helper<'_>, i: usize) -> String {
    match arg(h, i) {
        Value::Null => String::new(),
        v => as_text(&v),
    }
}

fn hash(h: &Helper<'_>, name: &str) -> Option<Value> {
    h.hash_get(name).map(|v| v.value().clone()).filter(|v| !v.is_null())
}

fn hash_text(h: &Helper<'_>, name: &str) -> Option<String> {
    hash(h, name).map(|v| as_text(&v))
}

fn string(s: String) -> Made {
    Made::Value(Value::String(s))
}

fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// A value as Java's `toString` shows it, which is how WireMock writes a
/// helper's list or map: `[1, b]`, `{a=1}`.
fn java_text(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(java_text).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!("{{{}}}", m.iter().map(|(k, v)| format!("{k}={}", java_text(v))).collect::<Vec<_>>().join(", ")),
        Value::Null => String::new(),
        other => as_text(other),
    }
}

/// JSON as Jackson's default pretty printer writes it (WireMock's
/// `toJson`, `formatJson` and an object `jsonPath` finds).
fn jackson(v: &Value, level: usize) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{ }".into(),
        Value::Object(m) => {
            let pad = "  ".repeat(level + 1);
            let fields: Vec<String> =
                m.iter().map(|(k, v)| format!("{pad}{} : {}", Value::String(k.clone()), jackson(v, level + 1))).collect();
            format!("{{\n{}\n{}}}", fields.join(",\n"), "  ".repeat(level))
        }
        Value::Array(a) if a.is_empty() => "[ ]".into(),
        Value::Array(a) => format!("[ {} ]", a.iter().map(|v| jackson(v, level)).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A pattern with ASCII classes (`\d`, `\w`), as Java's and the matchers'.
fn regex(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(&format!("(?-u){pattern}")).map_err(|e| format!("bad regex `{pattern}`: {e}"))
}

fn number(v: &Value) -> Result<Number, String> {
    match v {
        Value::Number(n) => Ok(n.clone()),
        Value::String(s) => serde_json::from_str::<Number>(s.trim()).map_err(|_| format!("`{s}` is not a number")),
        other => Err(format!("{other} is not a number")),
    }
}

/// The date a helper was given: a date another helper made, ISO 8601 text
/// or epoch milliseconds.
fn date_of(v: &Value) -> Result<Zoned, String> {
    match v {
        Value::Number(n) => {
            n.as_i64().and_then(chrono::DateTime::from_timestamp_millis).map(Zoned::utc).ok_or_else(|| format!("{n} is not a date"))
        }
        Value::String(s) => dates::parse(s, None),
        other => Err(format!("{other} is not a date")),
    }
}

/// `offset`, `timezone` and `format` applied to `at`.
fn shaped(h: &Helper<'_>, mut at: Zoned) -> Result<Made, String> {
    if let Some(offset) = hash_text(h, "offset") {
        at = at.offset(&offset)?;
    }
    if let Some(zone) = hash_text(h, "timezone") {
        at = at.in_zone(&zone)?;
    }
    Ok(match hash_text(h, "format") {
        Some(f) if f == "epoch" || f == "unix" => {
            Made::Value(Value::Number(at.format(&f).parse::<i64>().map_err(|e| e.to_string())?.into()))
        }
        Some(f) => string(at.format(&f)),
        None => Made::Date(at),
    })
}

fn now(h: &Helper<'_>) -> Result<Made, String> {
    shaped(h, Zoned::utc(chrono::Utc::now()))
}

fn date(h: &Helper<'_>) -> Result<Made, String> {
    shaped(h, date_of(&arg(h, 0))?)
}

fn parse_date(h: &Helper<'_>) -> Result<Made, String> {
    Ok(Made::Date(dates::parse(&text(h, 0), hash_text(h, "format").as_deref())?))
}

fn json_path(h: &Helper<'_>) -> Result<Made, String> {
    let doc: Value = match arg(h, 0) {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        other => other,
    };
    let path = text(h, 1);
    let path = serde_json_path::JsonPath::parse(&path).map_err(|e| format!("bad JSONPath `{path}`: {e}"))?;
    let found = path.query(&doc).all().first().map(|v| (*v).clone());
    Ok(Made::Json(found.or_else(|| hash(h, "default")).unwrap_or(Value::Null)))
}

fn format_json(h: &Helper<'_>) -> Result<Made, String> {
    let doc = match arg(h, 0) {
        Value::String(s) => serde_json::from_str(&s).map_err(|e| format!("not JSON: {e}"))?,
        other => other,
    };
    Ok(string(if hash_text(h, "format").as_deref() == Some("compact") { doc.to_string() } else { jackson(&doc, 0) }))
}

/// `{{math a '+' b}}`: `+ - * / %`. Whole numbers stay whole, and a whole
/// division rounds half away from zero, as WireMock's does.
fn math(h: &Helper<'_>) -> Result<Made, String> {
    let (a, op, b) = (number(&arg(h, 0))?, text(h, 1), number(&arg(h, 2))?);
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let whole = match op.as_str() {
            "+" => x.checked_add(y),
            "-" => x.checked_sub(y),
            "*" => x.checked_mul(y),
            "/" | "%" if y == 0 => return Err("division by zero".into()),
            "/" => Some((x as f64 / y as f64).round() as i64),
            "%" => Some(x % y),
            _ => return Err(format!("unknown operator `{op}` (use + - * / %)")),
        };
        return whole.map(|n| Made::Value(n.into())).ok_or_else(|| "the result is too large".into());
    }
    let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    let r = match op.as_str() {
        "+" => x + y,
        "-" => x - y,
        "*" => x * y,
        "/" => x / y,
        "%" => x % y,
        _ => return Err(format!("unknown operator `{op}` (use + - * / %)")),
    };
    Number::from_f64(r).map(|n| Made::Value(Value::Number(n))).ok_or_else(|| "the result is not a number".into())
}

fn size(h: &Helper<'_>) -> Result<Made, String> {
    let n = match arg(h, 0) {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        Value::Null => 0,
        other => return Err(format!("{other} has no size")),
    };
    Ok(Made::Value(n.into()))
}

fn abbreviate(h: &Helper<'_>) -> Result<Made, String> {
    let (s, width) = (text(h, 0), number(&arg(h, 1))?.as_u64().unwrap_or(0) as usize);
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= width || width < 4 {
        return Ok(string(s));
    }
    Ok(string(format!("{}...", chars[..width - 3].iter().collect::<String>())))
}

fn substring(h: &Helper<'_>) -> Result<Made, String> {
    let chars: Vec<char> = text(h, 0).chars().collect();
    let start = number(&arg(h, 1))?.as_u64().unwrap_or(0) as usize;
    let end = if h.param(2).is_some() { number(&arg(h, 2))?.as_u64().unwrap_or(0) as usize } else { chars.len() };
    chars.get(start..end.min(chars.len())).map(|c| string(c.iter().collect())).ok_or_else(|| format!("{start}..{end} is outside the text"))
}

/// Java's `String.format` for the conversions templates use: `%s`, `%d`,
/// `%f`, `%x`, `%X`, `%%`, with flags, width and precision.
fn string_format(h: &Helper<'_>) -> Result<Made, String> {
    let pattern = text(h, 0);
    static SPEC: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let spec = SPEC.get_or_init(|| regex::Regex::new(r"%([-0+ ,]*)([0-9]+)?(?:\.([0-9]+))?([sdfxXn%])").expect("a fixed pattern"));
    let (mut out, mut last, mut next) = (String::new(), 0, 1);
    for c in spec.captures_iter(&pattern) {
        let whole = c.get(0).expect("a match");
        out.push_str(&pattern[last..whole.start()]);
        last = whole.end();
        let (flags, width): (&str, usize) = (&c[1], c.get(2).map_or(0, |w| w.as_str().parse().unwrap_or(0)));
        let precision = c.get(3).map(|p| p.as_str().parse::<usize>().unwrap_or(0));
        let mut value = || {
            next += 1;
            arg(h, next - 1)
        };
        let body = match &c[4] {
            "%" => "%".to_string(),
            "n" => "\n".to_string(),
            "s" => java_text(&value()),
            "d" => number(&value())?.as_i64().ok_or("%d needs a whole number")?.to_string(),
            "f" => format!("{:.*}", precision.unwrap_or(6), number(&value())?.as_f64().unwrap_or(0.0)),
            "x" => format!("{:x}", number(&value())?.as_i64().ok_or("%x needs a whole number")?),
            _ => format!("{:X}", number(&value())?.as_i64().ok_or("%X needs a whole number")?),
        };
        let body = if flags.contains('+') && !body.starts_with('-') && matches!(&c[4], "d" | "f") { format!("+{body}") } else { body };
        let pad = width.saturating_sub(body.chars().count());
        out.push_str(&if flags.contains('-') {
            format!("{body}{}", " ".repeat(pad))
        } else if flags.contains('0') {
            let (sign, digits) = if body.starts_with(['-', '+']) { body.split_at(1) } else { ("", body.as_str()) };
            format!("{sign}{}{digits}", "0".repeat(pad))
        } else {
            format!("{}{body}", " ".repeat(pad))
        });
    }
    out.push_str(&pattern[last..]);
    Ok(string(out))
}

fn yes_no(h: &Helper<'_>) -> Result<Made, String> {
    let word = match arg(h, 0) {
        Value::Bool(true) => hash_text(h, "yes").unwrap_or_else(|| "yes".into()),
        Value::Bool(false) => hash_text(h, "no").unwrap_or_else(|| "no".into()),
        _ => hash_text(h, "maybe").unwrap_or_else(|| "maybe".into()),
    };
    Ok(string(word))
}

/// The first match of the pattern (its groups, as a list, when it has some).
fn regex_extract(h: &Helper<'_>) -> Result<Made, String> {
    let (subject, re) = (text(h, 0), regex(&text(h, 1))?);
    let Some(c) = re.captures(subject.as_bytes()) else {
        return Ok(hash(h, "default").map(Made::Value).unwrap_or_else(|| string(String::new())));
    };
    let text =
        |g: Option<regex::bytes::Match<'_>>| Value::String(g.map_or(String::new(), |g| String::from_utf8_lossy(g.as_bytes()).into_owned()));
    if c.len() == 1 {
        return Ok(Made::Value(text(c.get(0))));
    }
    Ok(Made::Value(Value::Array(c.iter().skip(1).map(text).collect())))
}

fn contains(h: &Helper<'_>) -> Result<Made, String> {
    let found = match (arg(h, 0), arg(h, 1)) {
        (Value::Array(items), needle) => items.contains(&needle) || items.iter().any(|i| as_text(i) == as_text(&needle)),
        (haystack, needle) => as_text(&haystack).contains(&as_text(&needle)),
    };
    Ok(Made::Value(Value::Bool(found)))
}

fn base64(h: &Helper<'_>) -> Result<Made, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let s = text(h, 0);
    if hash(h, "decode").is_some_and(|v| truthy(&v)) {
        let bytes = engine.decode(s.trim()).map_err(|e| format!("not base64: {e}"))?;
        return Ok(string(String::from_utf8_lossy(&bytes).into_owned()));
    }
    let encoded = engine.encode(s);
    Ok(string(if hash(h, "padding").is_some_and(|v| !truthy(&v)) { encoded.trim_end_matches('=').to_string() } else { encoded }))
}

/// As Java's `URLEncoder` (form encoding: a space is `+`).
fn url_encode(h: &Helper<'_>) -> Result<Made, String> {
    let s = text(h, 0);
    if hash(h, "decode").is_some_and(|v| truthy(&v)) {
        let spaced = s.replace('+', " ");
        return Ok(string(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()));
    }
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'*').remove(b'_').remove(b' ');
    Ok(string(percent_encoding::utf8_percent_encode(&s, KEEP).to_string().replace(' ', "+")))
}

fn range(h: &Helper<'_>) -> Result<Made, String> {
    let (from, to) = (
        number(&arg(h, 0))?.as_i64().ok_or("range needs whole numbers")?,
        number(&arg(h, 1))?.as_i64().ok_or("range needs whole numbers")?,
    );
    if to.saturating_sub(from) > 100_000 {
        return Err("a range of more than 100,000 numbers".into());
    }
    Ok(Made::Value(Value::Array((from..=to).map(Value::from).collect())))
}

/// `{{join list ','}}` (or separator first, as WireMock's docs write it).
fn join(h: &Helper<'_>) -> Result<Made, String> {
    let (items, sep) = match (arg(h, 0), arg(h, 1)) {
        (Value::Array(items), sep) | (sep, Value::Array(items)) => (items, as_text(&sep)),
        (single, sep) => (vec![single], as_text(&sep)),
    };
    Ok(string(items.iter().map(java_text).collect::<Vec<_>>().join(&sep)))
}

fn pick_random(h: &Helper<'_>) -> Result<Made, String> {
    let items: Vec<Value> = match h.params().as_slice() {
        [one] => match one.value() {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        },
        many => many.iter().map(|p| p.value().clone()).collect(),
    };
    if items.is_empty() {
        return Err("nothing to pick from".into());
    }
    Ok(Made::Value(items[fastrand::usize(..items.len())].clone()))
}

fn random_int(h: &Helper<'_>) -> Result<Made, String> {
    let bound =
        |name, default| hash(h, name).map(|v| number(&v).map(|n| n.as_i64().unwrap_or(default))).transpose().map(|v| v.unwrap_or(default));
    let (lower, upper) = (bound("lower", i64::from(i32::MIN))?, bound("upper", i64::from(i32::MAX))?);
    if lower >= upper {
        return Err(format!("lower {lower} is not below upper {upper}"));
    }
    Ok(Made::Value(fastrand::i64(lower..upper).into()))
}

fn random_decimal(h: &Helper<'_>) -> Result<Made, String> {
    let bound =
        |name, default| hash(h, name).map(|v| number(&v).map(|n| n.as_f64().unwrap_or(default))).transpose().map(|v| v.unwrap_or(default));
    let (lower, upper) = (bound("lower", f64::MIN / 2.0)?, bound("upper", f64::MAX / 2.0)?);
    Number::from_f64(lower + fastrand::f64() * (upper - lower)).map(|n| Made::Value(Value::Number(n))).ok_or_else(|| "bad bounds".into())
}

fn random_value(h: &Helper<'_>) -> Result<Made, String> {
    let length = hash(h, "length").and_then(|v| v.as_u64()).unwrap_or(16) as usize;
    let kind = hash_text(h, "type").unwrap_or_else(|| "ALPHANUMERIC".into());
    let from = |chars: &[u8]| (0..length).map(|_| chars[fastrand::usize(..chars.len())] as char).collect::<String>();
    let value = match kind.as_str() {
        "UUID" => super::mapping::random_uuid(),
        "NUMERIC" => from(b"0123456789"),
        "ALPHABETIC" => from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        "HEXADECIMAL" => from(b"0123456789abcdef"),
        "ALPHANUMERIC_AND_SYMBOLS" => from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_=+[]{};:,.<>/?"),
        _ => from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    };
    let value = if hash(h, "uppercase").is_some_and(|v| truthy(&v)) { value.to_uppercase() } else { value };
    Ok(string(value))
}

#[cfg(test)]
#[path = "helpers_tests.rs"]
mod tests;
