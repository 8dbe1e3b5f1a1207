//! The dotenv file syntax: `KEY=VALUE` lines (LF or CRLF, a UTF-8 BOM
//! allowed), `#` comments, single or double quotes (which may span lines),
//! an optional `export ` prefix.
//!
//! Every entry keeps the line it started on, so that configuration errors can
//! point at `FILE:LINE`. No `$VAR` expansion: the same file must mean the same
//! thing to `docker --env-file`, systemd and CI runners, which do not expand.

/// One `KEY=VALUE` assignment and the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, without any `export ` prefix.
    pub key: String,
    /// The value: a quoted one unquoted and unescaped, an unquoted one
    /// without its trailing ` #` comment.
    pub value: String,
    /// The 1-based line the assignment starts on.
    pub line: usize,
}

/// A syntax error at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The 1-based line of the assignment at fault.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// Parses a whole file. Later assignments of a key do not replace earlier
/// ones here; the caller decides (the configuration keeps the last).
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    // A byte-order mark, as Windows editors write, is not part of a key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let err = |message: String| SyntaxError { line: start + 1, message };
        let mut line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("export ") {
            line = rest.trim_start();
        }
        let Some(eq) = line.find('=') else {
            return Err(err(format!("expected KEY=VALUE, found `{}`", line.trim_end())));
        };
        let key = line[..eq].trim_end();
        if !is_key(key) {
            return Err(err(format!("`{key}` is not a valid key (letters, digits and _)")));
        }
        let raw = line[eq + 1..].trim_start();
        let value = match raw.chars().next() {
            Some(q @ ('"' | '\'')) => {
                // A quoted value may continue over the following lines.
                let mut text = raw[1..].to_string();
                let (value, after) = loop {
                    if let Some(found) = closing_quote(&text, q) {
                        break found;
                    }
                    if i >= lines.len() {
                        let kind = if q == '"' { "double" } else { "single" };
                        return Err(err(format!("unterminated {kind} quote in the value of {key}")));
                    }
                    text.push('\n');
                    text.push_str(lines[i]);
                    i += 1;
                };
                let after = after.trim();
                if !after.is_empty() && !after.starts_with('#') {
                    return Err(err(format!("unexpected `{after}` after the closing quote of {key}")));
                }
                value
            }
            _ => match raw.find(" #").or_else(|| raw.find("\t#")) {
                Some(hash) => raw[..hash].trim_end().to_string(),
                None => raw.trim_end().to_string(),
            },
        };
        entries.push(Entry { key: key.to_string(), value, line: start + 1 });
    }
    Ok(entries)
}

fn is_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Finds the closing quote in `text` (which starts just after the opening
/// one) and returns the unescaped value and what follows the quote.
fn closing_quote(text: &str, quote: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == quote {
            return Some((value, &text[at + 1..]));
        }
        if c == '\\' && quote == '"' {
            match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, other)) => value.push(other),
                None => value.push('\\'),
            }
            continue;
        }
        value.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (String, String) {
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        (entries[0].key.clone(), entries[0].value.clone())
    }

    #[test]
    fn plain_quoted_exported_and_commented() {
        assert_eq!(one("A=b c  # note"), ("A".into(), "b c".into()));
        assert_eq!(one("export A = 'x # y'"), ("A".into(), "x # y".into()));
        assert_eq!(one(r#"A="say \"hi\"\n" # c"#), ("A".into(), "say \"hi\"\n".into()));
        assert_eq!(one("A='a\\n'"), ("A".into(), "a\\n".into()));
        assert_eq!(one("A="), ("A".into(), "".into()));
        assert_eq!(one("A=http://x.test/#frag"), ("A".into(), "http://x.test/#frag".into()));
    }

    #[test]
    fn lines_are_counted_across_comments_and_multiline_values() {
        let entries = parse("# top\n\nA=1\nB=\"two\nlines\"\nC=3\n").unwrap();
        let got: Vec<_> = entries.iter().map(|e| (e.key.as_str(), e.value.as_str(), e.line)).collect();
        assert_eq!(got, [("A", "1", 3), ("B", "two\nlines", 4), ("C", "3", 6)]);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("A=1\nB=\"open\nC=2\n").unwrap_err().line, 2);
        assert!(parse("A=1\nB=\"open\n").unwrap_err().message.contains("unterminated double quote"));
        assert_eq!(parse("\n\nnot an assignment\n").unwrap_err().line, 3);
        assert!(parse("A B=1").unwrap_err().message.contains("not a valid key"));
        assert!(parse("A='x' y").unwrap_err().message.contains("after the closing quote"));
    }
}
