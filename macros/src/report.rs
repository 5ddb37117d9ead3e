//! `STRUCTURED_ASYNC_REPORT=1` at build time: per function, its states, adapters and
//! fallbacks, printed on stderr so a user can see why a coroutine is the size it is.

pub(crate) struct Report {
    name: String,
    lines: Vec<String>,
}

impl Report {
    pub(crate) fn new(name: &str) -> Self {
        Report {
            name: name.to_owned(),
            lines: Vec::new(),
        }
    }

    pub(crate) fn line(&mut self, line: String) {
        // The body's `self` is `__self` inside the machine; the user wrote `self`.
        self.lines.push(line.replace("__self", "self"));
    }

    #[cfg(test)]
    pub(crate) fn lines(&self) -> &[String] {
        &self.lines
    }

    pub(crate) fn print(&self) {
        if std::env::var_os("STRUCTURED_ASYNC_REPORT").is_some_and(|v| v != "0" && !v.is_empty()) {
            eprintln!("structured-async: fn {}", self.name);
            for l in &self.lines {
                eprintln!("  {l}");
            }
        }
    }
}
