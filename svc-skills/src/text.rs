//! Words of a query or a skill, as the search and the lexicon take them.

/// A query is read up to this many distinct words.
pub const MAX_QUERY_WORDS: usize = 32;
/// Longer runs of letters are not words anyone types (a hash, a URL): left out.
const MAX_WORD_LEN: usize = 40;

/// The distinct lowercase words of `text` (runs of letters and digits), in order of first
/// appearance, at most `max`. Only letters and digits, so the words are safe to join into a
/// `to_tsquery` text.
pub fn words(text: &str, max: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| (2..=MAX_WORD_LEN).contains(&word.chars().count()))
    {
        let word = word.to_lowercase();
        if !seen.contains(&word) {
            seen.push(word);
            if seen.len() == max {
                break;
            }
        }
    }
    seen
}

/// The `to_tsquery` text matching any of `words`.
pub fn any_of(words: &[String]) -> String {
    words.join(" | ")
}

/// The words of a skill that a misspelt query word may be corrected to: three letters or more.
pub fn lexicon<'a>(parts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut all: Vec<String> = parts
        .into_iter()
        .flat_map(|part| words(part, usize::MAX))
        .filter(|word| word.chars().count() >= 3)
        .collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_lowercased_once_each() {
        assert_eq!(
            words("Schedule my posts: best-time & posts | !(x) 'quoted'", 10),
            ["schedule", "my", "posts", "best", "time", "quoted"]
        );
        assert_eq!(words("a b c", 10), Vec::<String>::new());
        assert_eq!(words("one two three", 2), ["one", "two"]);
        assert_eq!(words("Émojis für Fans", 5), ["émojis", "für", "fans"]);
        assert_eq!(any_of(&words("caption hooks", 5)), "caption | hooks");
    }

    #[test]
    fn the_lexicon_keeps_words_of_three_letters_or_more_sorted() {
        assert_eq!(
            lexicon(["caption-hooks", "Hook the fan in 3 s", "captions"]),
            ["caption", "captions", "fan", "hook", "hooks", "the"]
        );
    }
}
