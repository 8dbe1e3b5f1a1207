//! WireMock's XML matchers over a request body: `equalToXml` (the same
//! document, as WireMock's XMLUnit compares: whitespace between elements,
//! comments, attribute order, namespace prefixes and the order of elements
//! of different names do not count) and
//! `matchesXPath` (an XPath 1.0 expression that selects something, with
//! `xPathNamespaces` and an optional matcher for what it selects).
//!
//! XML is read and XPath evaluated by `sxd-document` and `sxd-xpath`,
//! the XPath 1.0 that WireMock's Java one is.

use sxd_document::dom::{ChildOfElement, ChildOfRoot, Element};
use sxd_document::parser;
use sxd_xpath::{Context, Factory, Value};

/// Why `text` is not an XML document, if it is not one.
pub fn check_document(text: &str) -> Result<(), String> {
    parser::parse(text).map(drop).map_err(|e| format!("not XML: {e:?}"))
}

/// Why `expr` is not an XPath expression, if it is not one.
pub fn check_xpath(expr: &str) -> Result<(), String> {
    match Factory::new().build(expr) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("an empty XPath expression".into()),
        Err(e) => Err(format!("bad XPath `{expr}`: {e:?}")),
    }
}

/// Whether `actual` is the document `expected` is.
pub fn equal(expected: &str, actual: &str) -> bool {
    let (Ok(e), Ok(a)) = (parser::parse(expected), parser::parse(actual)) else { return false };
    let (e, a) = (e.as_document(), a.as_document());
    let (Some(e), Some(a)) = (root(&e), root(&a)) else { return false };
    same_element(e, a)
}

fn root<'d>(d: &sxd_document::dom::Document<'d>) -> Option<Element<'d>> {
    d.root().children().into_iter().find_map(|c| match c {
        ChildOfRoot::Element(e) => Some(e),
        _ => None,
    })
}

fn same_element<'d>(e: Element<'d>, a: Element<'d>) -> bool {
    if e.name().local_part() != a.name().local_part() || e.name().namespace_uri() != a.name().namespace_uri() {
        return false;
    }
    let attributes = |el: Element<'_>| {
        let mut list: Vec<(Option<String>, String, String)> = el
            .attributes()
            .iter()
            .map(|at| (at.name().namespace_uri().map(str::to_string), at.name().local_part().to_string(), at.value().to_string()))
            .collect();
        list.sort();
        list
    };
    if attributes(e) != attributes(a) {
        return false;
    }
    let (ec, ac) = (content(e), content(a));
    let texts =
        |parts: &[Part<'_>]| parts.iter().filter_map(|p| if let Part::Text(t) = p { Some(t.clone()) } else { None }).collect::<Vec<_>>();
    let elements =
        |parts: &[Part<'d>]| parts.iter().filter_map(|p| if let Part::Element(e) = p { Some(*e) } else { None }).collect::<Vec<_>>();
    if texts(&ec) != texts(&ac) {
        return false;
    }
    // As WireMock's XMLUnit pairs children (by name): each expected element
    // with the first unpaired one of its name, so elements of different
    // names may come in any order, and those of one name in theirs.
    let (expected, mut actual) = (elements(&ec), elements(&ac).into_iter().map(Some).collect::<Vec<_>>());
    expected.len() == actual.len()
        && expected.into_iter().all(|x| {
            let named = |y: &Option<Element<'d>>| {
                y.is_some_and(|y| y.name().local_part() == x.name().local_part() && y.name().namespace_uri() == x.name().namespace_uri())
            };
            actual.iter_mut().find(|y| named(y)).and_then(Option::take).is_some_and(|y| same_element(x, y))
        })
}

enum Part<'d> {
    Element(Element<'d>),
    Text(String),
}

/// An element's children that count: elements, and text that is not only
/// whitespace (trimmed; adjacent pieces joined).
fn content(el: Element<'_>) -> Vec<Part<'_>> {
    let mut parts: Vec<Part<'_>> = Vec::new();
    for child in el.children() {
        match child {
            ChildOfElement::Element(e) => parts.push(Part::Element(e)),
            ChildOfElement::Text(t) => match parts.last_mut() {
                Some(Part::Text(s)) => s.push_str(t.text()),
                _ => parts.push(Part::Text(t.text().to_string())),
            },
            _ => {}
        }
    }
    parts
        .into_iter()
        .filter_map(|p| match p {
            Part::Text(s) if s.trim().is_empty() => None,
            Part::Text(s) => Some(Part::Text(s.trim().to_string())),
            other => Some(other),
        })
        .collect()
}

/// What `expr` selects in the document `text`, each as its string value;
/// None when `text` is not XML or selects nothing (a false boolean, an
/// empty node set).
pub fn select(expr: &str, namespaces: &[(String, String)], text: &str) -> Option<Vec<String>> {
    let package = parser::parse(text).ok()?;
    let document = package.as_document();
    let xpath = Factory::new().build(expr).ok()??;
    let mut context = Context::new();
    for (prefix, uri) in namespaces {
        context.set_namespace(prefix, uri);
    }
    match xpath.evaluate(&context, document.root()).ok()? {
        Value::Nodeset(nodes) if nodes.size() > 0 => Some(nodes.document_order().iter().map(|n| n.string_value()).collect()),
        Value::Nodeset(_) | Value::Boolean(false) => None,
        Value::Boolean(true) => Some(vec!["true".into()]),
        Value::Number(n) if n.is_nan() => None,
        Value::Number(n) => Some(vec![if n.fract() == 0.0 { format!("{n:.0}") } else { n.to_string() }]),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(vec![s]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_documents_ignore_layout_order_and_prefixes() {
        let expected = r#"<a:list xmlns:a="urn:t" kind="todo" n="2"><item>wash</item><item>dry</item></a:list>"#;
        let same = "<?xml version=\"1.0\"?>\n<b:list n=\"2\" kind=\"todo\" xmlns:b=\"urn:t\">\n  <item> wash </item>\n  <!-- c -->\n  <item>dry</item>\n</b:list>";
        assert!(equal(expected, same));
        assert!(!equal(expected, r#"<a:list xmlns:a="urn:t" kind="todo" n="2"><item>dry</item><item>wash</item></a:list>"#));
        assert!(!equal(expected, r#"<list kind="todo" n="2"><item>wash</item><item>dry</item></list>"#));
        assert!(equal("<o><item>tea</item><qty>2</qty></o>", "<o> <qty>2</qty><item>tea</item> </o>"));
        assert!(!equal("<o><item>tea</item><qty>2</qty></o>", "<o><qty>2</qty><qty>2</qty></o>"));
        assert!(!equal(expected, "not xml"));
    }

    #[test]
    fn xpath_selects_nodes_text_and_truths() {
        let doc = r#"<todo-list xmlns:s="urn:s"><todo-item id="1">wash</todo-item><todo-item>dry</todo-item><s:x>y</s:x></todo-list>"#;
        assert_eq!(select("//todo-item/text()", &[], doc).unwrap(), ["wash", "dry"]);
        assert!(select("/todo-list[count(todo-item) = 2]", &[], doc).is_some());
        assert!(select("/todo-list[count(todo-item) = 3]", &[], doc).is_none());
        assert_eq!(select("//todo-item/@id", &[], doc).unwrap(), ["1"]);
        assert_eq!(select("//n:x", &[("n".into(), "urn:s".into())], doc).unwrap(), ["y"]);
        assert!(check_xpath("//[").is_err() && check_xpath("//a").is_ok());
    }
}
