//! `SKILL.md` documents: YAML front matter (`name`, `category`, `description`, `tags`,
//! `related`) and the skill's content below it. The front matter is read as the subset of YAML
//! these files need (`key: value` lines, lists inline `[a, b]` or as `- item` lines, values
//! optionally quoted); anything else is refused with its line, never guessed at.

use std::path::Path;

use crate::error::SkillsError;
use crate::store::SkillFields;

/// The shipped catalogue, embedded by build.rs: (path under `catalogue/`, text).
pub const SHIPPED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillDoc {
    pub fields: SkillFields,
    /// Names of explicitly related skills.
    pub related: Vec<String>,
}

pub const MAX_NAME_LEN: usize = 80;
pub const MAX_CATEGORY_LEN: usize = 40;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 40;
pub const MAX_RELATED: usize = 20;
pub const MAX_DESCRIPTION_LEN: usize = 500;
pub const MAX_CONTENT_LEN: usize = 64 * 1024;

/// Lowercase letters, digits and `-`, starting with a letter or digit.
fn is_slug(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
}

fn slug(field: &str, text: &str, max: usize) -> Result<String, SkillsError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SkillsError::missing(field));
    }
    if !is_slug(text, max) {
        return Err(SkillsError::invalid(
            field,
            format!("{field} must be 1 to {max} lowercase letters, digits and '-'"),
        ));
    }
    Ok(text.to_owned())
}

fn prose(field: &str, text: &str, max: usize) -> Result<String, SkillsError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SkillsError::missing(field));
    }
    if text.len() > max {
        return Err(SkillsError::invalid(
            field,
            format!("{field} must be at most {max} bytes"),
        ));
    }
    if text.contains('\0') {
        return Err(SkillsError::invalid(field, format!("{field} holds NUL")));
    }
    Ok(text.to_owned())
}

/// Slugs, each once, in the order given.
pub fn slugs(field: &str, items: &[String], max: usize) -> Result<Vec<String>, SkillsError> {
    if items.len() > max {
        return Err(SkillsError::invalid(
            field,
            format!("at most {max} {field}"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let item = slug(field, item, MAX_TAG_LEN.max(MAX_NAME_LEN))?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

pub fn name(text: &str) -> Result<String, SkillsError> {
    slug("name", text, MAX_NAME_LEN)
}

pub fn category(text: &str) -> Result<String, SkillsError> {
    slug("category", text, MAX_CATEGORY_LEN)
}

pub fn tags(items: &[String]) -> Result<Vec<String>, SkillsError> {
    let tags = slugs("tags", items, MAX_TAGS)?;
    if let Some(long) = tags.iter().find(|tag| tag.len() > MAX_TAG_LEN) {
        return Err(SkillsError::invalid(
            "tags",
            format!(
                "a tag must be at most {MAX_TAG_LEN} bytes ({} is longer)",
                long.len()
            ),
        ));
    }
    Ok(tags)
}

pub fn description(text: &str) -> Result<String, SkillsError> {
    prose("description", text, MAX_DESCRIPTION_LEN)
}

pub fn content(text: &str) -> Result<String, SkillsError> {
    prose("content", text, MAX_CONTENT_LEN)
}

pub fn related(items: &[String]) -> Result<Vec<String>, SkillsError> {
    slugs("related", items, MAX_RELATED)
}

/// Why a document could not be read, with the line (1-based, in the file) when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: Option<usize>,
    pub problem: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

fn at(line: usize, problem: impl Into<String>) -> ParseError {
    ParseError {
        line: Some(line),
        problem: problem.into(),
    }
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

enum Value {
    Text(String),
    List(Vec<String>),
}

/// Parses one `SKILL.md` document.
pub fn parse(text: &str) -> Result<SkillDoc, ParseError> {
    let mut lines = text.lines().enumerate().map(|(n, line)| (n + 1, line));
    match lines.next() {
        Some((_, first)) if first.trim_end() == "---" => {}
        _ => return Err(at(1, "a SKILL.md starts with a `---` line of front matter")),
    }
    let mut entries: Vec<(usize, String, Value)> = Vec::new();
    let mut closed = None;
    for (number, line) in lines.by_ref() {
        if line.trim_end() == "---" {
            closed = Some(number);
            break;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(item) = line.trim_start().strip_prefix("- ") {
            match entries.last_mut() {
                Some((_, _, Value::List(items))) => items.push(unquote(item).to_owned()),
                Some((_, key, Value::Text(value))) if value.is_empty() => {
                    let key = key.clone();
                    entries.pop();
                    entries.push((number, key, Value::List(vec![unquote(item).to_owned()])));
                }
                _ => return Err(at(number, "a list item outside a list")),
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(at(number, "expected `key: value`"));
        };
        let key = key.trim();
        if line.starts_with(char::is_whitespace) {
            return Err(at(number, "nested keys are not part of a SKILL.md"));
        }
        if entries.iter().any(|(_, seen, _)| seen == key) {
            return Err(at(number, format!("`{key}` is given twice")));
        }
        let value = value.trim();
        let value = match value.strip_prefix('[') {
            Some(rest) => {
                let inner = rest
                    .strip_suffix(']')
                    .ok_or_else(|| at(number, "an inline list must end with `]` on its line"))?;
                Value::List(
                    inner
                        .split(',')
                        .map(unquote)
                        .filter(|item| !item.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            None => Value::Text(unquote(value).to_owned()),
        };
        entries.push((number, key.to_owned(), value));
    }
    let Some(closed) = closed else {
        return Err(ParseError {
            line: None,
            problem: "the front matter has no closing `---` line".into(),
        });
    };
    let body: Vec<&str> = lines.map(|(_, line)| line).collect();
    let body = body.join("\n");

    let mut name_value = None;
    let mut category_value = None;
    let mut description_value = None;
    let mut tags_value = Vec::new();
    let mut related_value = Vec::new();
    for (number, key, value) in entries {
        match (key.as_str(), value) {
            ("name", Value::Text(text)) => name_value = Some((number, text)),
            ("category", Value::Text(text)) => category_value = Some((number, text)),
            ("description", Value::Text(text)) => description_value = Some((number, text)),
            ("tags", Value::List(items)) => tags_value = items,
            ("related", Value::List(items)) => related_value = items,
            // An empty `tags:` or `related:` is an empty list.
            ("tags" | "related", Value::Text(text)) if text.is_empty() => {}
            ("name" | "category" | "description", Value::List(_)) => {
                return Err(at(number, format!("`{key}` is text, not a list")));
            }
            ("tags" | "related", Value::Text(_)) => {
                return Err(at(number, format!("`{key}` is a list: [a, b]")));
            }
            (other, _) => return Err(at(number, format!("unknown key `{other}`"))),
        }
    }
    let required = |value: Option<(usize, String)>, key: &str| {
        value.ok_or_else(|| at(closed, format!("`{key}` is missing")))
    };
    let (name_line, name_text) = required(name_value, "name")?;
    let (category_line, category_text) = required(category_value, "category")?;
    let (description_line, description_text) = required(description_value, "description")?;
    Ok(SkillDoc {
        fields: SkillFields {
            name: checked(name_line, name(&name_text))?,
            category: checked(category_line, category(&category_text))?,
            description: checked(description_line, description(&description_text))?,
            tags: checked(closed, tags(&tags_value))?,
            content: checked(closed + 1, content(&body))?,
        },
        related: checked(closed, related(&related_value))?,
    })
}

fn checked<T>(line: usize, result: Result<T, SkillsError>) -> Result<T, ParseError> {
    result.map_err(|err| at(line, common::ApiError::from(err).message))
}

/// Every `*.md` file under `dir`, as (path relative to `dir`, text), sorted by path.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    fn walk(root: &Path, dir: &Path, into: &mut Vec<(String, String)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, into)?;
            } else if path.extension().is_some_and(|ext| ext == "md") {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                into.push((
                    relative.display().to_string(),
                    std::fs::read_to_string(&path)?,
                ));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "---\nname: caption-hooks\ncategory: captions\n\
        description: \"Opening lines: stop the scroll\"\ntags: [captions, hooks]\n\
        related:\n  - caption-length\n  - 'cta-writing'\n---\n\n# Hooks\n\nLead with a question.\n";

    #[test]
    fn reads_the_front_matter_and_the_content() {
        let doc = parse(DOC).unwrap();
        assert_eq!(doc.fields.name, "caption-hooks");
        assert_eq!(doc.fields.category, "captions");
        assert_eq!(doc.fields.description, "Opening lines: stop the scroll");
        assert_eq!(doc.fields.tags, ["captions", "hooks"]);
        assert_eq!(doc.related, ["caption-length", "cta-writing"]);
        assert_eq!(doc.fields.content, "# Hooks\n\nLead with a question.");
    }

    #[test]
    fn refuses_what_it_does_not_understand_with_the_line() {
        let cases = [
            ("name: x\n", 1, "starts with"),
            ("---\nname: x\n", 0, "closing"),
            (
                "---\nname: Caption Hooks\ncategory: c\ndescription: d\n---\nbody",
                2,
                "lowercase",
            ),
            ("---\nname: x\nname: y\n---\n", 3, "twice"),
            ("---\nname: x\ncolour: red\n---\n", 3, "unknown key"),
            ("---\nname: x\ncategory: c\n---\nbody", 4, "description"),
            (
                "---\nname: x\ncategory: c\ndescription: d\ntags: [a, b\n---\nb",
                5,
                "]",
            ),
            (
                "---\nname: x\ncategory: c\ndescription: d\n---\n   \n",
                6,
                "content",
            ),
            ("---\n- a\n---\n", 2, "outside a list"),
        ];
        for (text, line, problem) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, (line != 0).then_some(line), "{text:?}: {err}");
            assert!(err.problem.contains(problem), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_shipped_catalogue_is_readable_large_enough_and_its_links_resolve() {
        let docs: Vec<SkillDoc> = SHIPPED
            .iter()
            .map(|(path, text)| parse(text).unwrap_or_else(|err| panic!("{path}: {err}")))
            .collect();
        assert!(docs.len() >= 60, "{} skills", docs.len());
        let mut categories: Vec<&str> = docs
            .iter()
            .map(|doc| doc.fields.category.as_str())
            .collect();
        categories.sort();
        categories.dedup();
        assert_eq!(categories.len(), 11, "{categories:?}");
        let names: Vec<&str> = docs.iter().map(|doc| doc.fields.name.as_str()).collect();
        for doc in &docs {
            assert!(
                doc.fields.content.len() > 300,
                "{} is too thin",
                doc.fields.name
            );
            for related in &doc.related {
                assert!(
                    names.contains(&related.as_str()),
                    "{} -> {related}",
                    doc.fields.name
                );
            }
        }
        for (path, text) in SHIPPED {
            let doc = parse(text).unwrap();
            assert!(
                path.starts_with(&format!("{}/{}", doc.fields.category, doc.fields.name)),
                "{path}"
            );
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
