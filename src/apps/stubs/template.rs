//! Response templates, compiled with Handlebars and refused when they
//! could loop: Handlebars expands partials with no limit, so a partial that
//! includes itself (`{{#*inline "p"}}x{{> p}}{{/inline}}{{> p}}`) would
//! recurse until the host's stack overflows. A template is checked when its
//! mapping loads (so `intercept check` names the file) and again before it
//! is rendered; a partial named only at render time (`{{> (lookup …)}}`)
//! is refused too, since it could name itself.

use std::collections::{BTreeMap, BTreeSet};

use handlebars::template::{DecoratorTemplate, Parameter, Template, TemplateElement};

/// The template compiled, or why it cannot be used.
pub fn compile(text: &str) -> Result<Template, String> {
    let template = Template::compile(text).map_err(|e| format!("template error: {e}"))?;
    let mut inline = BTreeMap::new();
    walk(&template, &mut BTreeSet::new(), &mut inline)?;
    for name in inline.keys() {
        if reaches(name, name, &inline, &mut BTreeSet::new()) {
            return Err(format!("template error: the partial `{name}` includes itself, so the template would never end"));
        }
    }
    Ok(template)
}

/// Collects the partials `template` includes into `used`, and each inline
/// partial's own into `inline`.
fn walk(template: &Template, used: &mut BTreeSet<String>, inline: &mut BTreeMap<String, BTreeSet<String>>) -> Result<(), String> {
    for element in &template.elements {
        match element {
            TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) if name(&d.name).as_deref() == Some("inline") => {
                let Some(partial) = d.params.first().and_then(name) else { continue };
                let mut own = BTreeSet::new();
                if let Some(body) = &d.template {
                    walk(body, &mut own, inline)?;
                }
                inline.entry(partial).or_default().extend(own);
            }
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                used.insert(partial_name(d)?);
                if let Some(body) = &d.template {
                    walk(body, used, inline)?;
                }
            }
            TemplateElement::DecoratorBlock(d) => {
                if let Some(body) = &d.template {
                    walk(body, used, inline)?;
                }
            }
            TemplateElement::HelperBlock(h) => {
                for body in [&h.template, &h.inverse].into_iter().flatten() {
                    walk(body, used, inline)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn partial_name(d: &DecoratorTemplate) -> Result<String, String> {
    name(&d.name).ok_or_else(|| "template error: a partial whose name is chosen at render time is not supported".to_string())
}

/// A name written in the template: `p`, `"p"`.
fn name(p: &Parameter) -> Option<String> {
    match p {
        Parameter::Name(n) => Some(n.clone()),
        Parameter::Path(handlebars::Path::Relative((_, raw)) | handlebars::Path::Local((_, _, raw))) => Some(raw.clone()),
        Parameter::Literal(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Whether inline partial `from` includes `target`, directly or not.
fn reaches(from: &str, target: &str, inline: &BTreeMap<String, BTreeSet<String>>, seen: &mut BTreeSet<String>) -> bool {
    let Some(used) = inline.get(from) else { return false };
    used.iter().any(|next| next == target || (seen.insert(next.clone()) && reaches(next, target, inline, seen)))
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn partials_that_include_themselves_are_refused() {
        for looping in [
            r#"{{#*inline "p"}}x{{> p}}{{/inline}}{{> p}}"#,
            r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{#if x}}{{> a}}{{/if}}{{/inline}}{{> a}}"#,
            r#"{{> (lookup request.query "name")}}"#,
        ] {
            let e = compile(looping).err().unwrap_or_else(|| panic!("accepted {looping}"));
            assert!(e.starts_with("template error: "), "{e}");
        }
        assert!(compile(r#"{{#*inline "p"}}x{{/inline}}{{> p}}{{> p}} {{request.path}}"#).is_ok());
        assert!(compile("{{#if}").is_err());
    }
}
