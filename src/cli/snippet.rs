//! Pipeline-file problems shown with their source: the message (`file: line N: …`, as before),
//! then the lines around it with the exact span underlined, rendered by `miette` from the TOML
//! parser's spans. Colour only on a terminal.

use std::io::IsTerminal;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use crate::plan::pipeline::PipelineError;

/// One problem with its place in the file.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Problem {
    message: String,
    code: NamedSource<String>,
    at: (usize, usize),
}

impl Diagnostic for Problem {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some("here".into()), self.at))))
    }
}

/// `shown: error`, and below it the source around the error's span when it has one. A span
/// longer than a line (a whole step table) is shown by its first line.
pub fn render(shown: &str, text: &str, error: &PipelineError) -> String {
    let message = format!("{shown}: {error}");
    let Some(span) = error.at().0 else { return message };
    let start = (span.start as usize).min(text.len());
    // The text may not be the one parsed (re-read from disk): a span off a character
    // boundary shows no snippet rather than panicking.
    let Some(rest) = text.get(start..) else { return message };
    let line_end = rest.find('\n').map_or(text.len(), |n| start + n);
    let end = (span.end as usize).clamp(start, line_end);
    if !text.is_char_boundary(end) {
        return message;
    }
    let theme =
        if std::io::stderr().is_terminal() { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let problem =
        Problem { message, code: NamedSource::new(shown, text.to_string()), at: (start, (end - start).max(1)) };
    let mut out = String::new();
    match GraphicalReportHandler::new_themed(theme).with_width(usize::MAX / 2).render_report(&mut out, &problem) {
        Ok(()) => out.trim_end().to_string(),
        Err(_) => problem.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::pipeline::Pipeline;

    #[test]
    fn an_inline_steps_array_points_at_the_exact_value_on_the_right_line() {
        let text = "name = \"p\"\nsteps = [\n  { name = \"a\", func = { function = \"tophat\", params = { radius = 3 } } },\n]\n";
        let (pipeline, map) = Pipeline::from_toml(text).expect("parses");
        let errors = crate::plan::pipeline::check_functions(&pipeline, crate::Registry::global(), Some(&map));
        let error = errors.first().expect("unknown parameter");
        assert_eq!(error.at().number(), Some(3), "{error}");
        let shown = render("p.toml", text, error);
        assert!(shown.contains("p.toml: line 3: step 1 `a`: `tophat` has no parameter `radius`"), "{shown}");
        let caret_line = shown.lines().find(|l| l.contains('┬') || l.contains('^')).expect("a marker under the span");
        let source_line = shown.lines().find(|l| l.contains("radius = 3")).expect("the source line");
        let col = |l: &str, pat: &str| l.find(pat).map(|b| l[..b].chars().count());
        assert_eq!(col(caret_line, "┬").map(|c| c >= col(source_line, "radius").unwrap_or(0)), Some(true), "{shown}");
    }

    #[test]
    fn an_error_without_a_place_is_the_plain_message() {
        let error = PipelineError::Empty;
        assert_eq!(render("p.toml", "", &error), format!("p.toml: {error}"));
    }
}
