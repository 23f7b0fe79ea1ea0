//! Check errors with their location: file, 1-based line and column.

use std::fmt;
use std::ops::Range;

/// One problem found in a policy, where it is.
///
/// `line` and `column` are 1-based and count characters; both are 0 when
/// the problem concerns a whole file (for instance it could not be read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub(crate) struct PolicyError {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl PolicyError {
    pub(crate) fn whole_file(file: &str, message: String) -> PolicyError {
        PolicyError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message,
        }
    }

    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in a policy; never empty. `Display` prints one error
/// a line, `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) struct PolicyErrors(pub(crate) Vec<PolicyError>);

impl PolicyErrors {
    pub(crate) fn errors(&self) -> &[PolicyError] {
        &self.0
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// The text of one policy file, kept to turn byte offsets into lines.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
}

impl Source {
    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = self.text.get(..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        (line, column)
    }

    /// `file:line:col` of a byte offset, for messages that point elsewhere.
    pub(crate) fn locate(&self, offset: usize) -> String {
        let (line, column) = self.line_col(offset);
        format!("{}:{line}:{column}", self.name)
    }
}

/// Where a value came from: which source, which bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) file: usize,
    pub(crate) span: Range<usize>,
}

/// Collects errors while checking; sorted by file and position at the end.
#[derive(Debug)]
pub(crate) struct Sink<'s> {
    sources: &'s [Source],
    found: Vec<(usize, usize, PolicyError)>,
    /// Not errors: things `policy check` points out.
    warnings: Vec<(usize, usize, PolicyError)>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(sources: &'s [Source]) -> Sink<'s> {
        Sink {
            sources,
            found: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, loc: &Loc, message: impl Into<String>) {
        let found = self.locate_error(loc, message.into());
        self.found.push(found);
    }

    /// Records a warning at `loc`: reported, but the policy is accepted.
    pub(crate) fn warn(&mut self, loc: &Loc, message: impl Into<String>) {
        let found = self.locate_error(loc, message.into());
        self.warnings.push(found);
    }

    /// The warnings so far, sorted by file and position.
    pub(crate) fn take_warnings(&mut self) -> Vec<PolicyError> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|(file, offset, _)| (*file, *offset));
        warnings.into_iter().map(|(_, _, w)| w).collect()
    }

    fn locate_error(&self, loc: &Loc, message: String) -> (usize, usize, PolicyError) {
        let Some(source) = self.sources.get(loc.file) else {
            return (loc.file, 0, PolicyError::whole_file("?", message));
        };
        let (line, column) = source.line_col(loc.span.start);
        (
            loc.file,
            loc.span.start,
            PolicyError {
                file: source.name.clone(),
                line,
                column,
                message,
            },
        )
    }

    /// Reports a problem in another file (an `.ics` file a schedule
    /// names), ordered as if it were at `anchor`, the reference to it.
    pub(crate) fn elsewhere(&mut self, anchor: &Loc, error: PolicyError) {
        self.found.push((anchor.file, anchor.span.start, error));
    }

    /// The name (path) of a policy source, as given when loading it.
    pub(crate) fn source_name(&self, file: usize) -> Option<&str> {
        self.sources.get(file).map(|s| s.name.as_str())
    }

    pub(crate) fn locate(&self, loc: &Loc) -> String {
        match self.sources.get(loc.file) {
            Some(source) => source.locate(loc.span.start),
            None => "?".to_owned(),
        }
    }

    /// How many errors so far; compare before and after checking an entry.
    pub(crate) fn len(&self) -> usize {
        self.found.len()
    }

    pub(crate) fn finish(mut self) -> Result<(), PolicyErrors> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found.sort_by_key(|(file, offset, _)| (*file, *offset));
        Err(PolicyErrors(
            self.found.into_iter().map(|(_, _, e)| e).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{PolicyError, PolicyErrors, Source};

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let source = Source {
            name: "p.toml".into(),
            text: "a = 1\nb = \"ü\" x\n".into(),
        };
        assert_eq!(source.line_col(0), (1, 1));
        assert_eq!(source.line_col(4), (1, 5));
        assert_eq!(source.line_col(6), (2, 1));
        // "ü" is two bytes: the 'x' after it is at byte 15, column 9.
        assert_eq!(source.line_col(15), (2, 9));
        assert_eq!(source.line_col(999), (3, 1));
    }

    #[test]
    fn display_is_one_error_a_line() {
        let errors = PolicyErrors(vec![
            PolicyError {
                file: "a.toml".into(),
                line: 3,
                column: 7,
                message: "bad".into(),
            },
            PolicyError::whole_file("b.toml", "unreadable".into()),
        ]);
        assert_eq!(errors.to_string(), "a.toml:3:7: bad\nb.toml: unreadable");
    }
}
