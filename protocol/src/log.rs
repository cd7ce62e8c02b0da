//! Guest log lines: a guest writes `"<level> <message>\n"` to standard
//! error, and the host logs the message at that level. A line without a
//! level word is logged at `info`, whole.

/// The level of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl LogLevel {
    /// The word that starts a line of this level.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// The level a word names: lowercase, as the SDK writes it, or
    /// uppercase; `None` for any other word.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "debug" | "DEBUG" => Some(LogLevel::Debug),
            "info" | "INFO" => Some(LogLevel::Info),
            "warn" | "WARN" => Some(LogLevel::Warn),
            "error" | "ERROR" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// The level word a line starts with and the rest of the line after
    /// the space, or `None` when its first word is no level.
    pub fn split_line(line: &str) -> Option<(Self, &str)> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        Some((Self::parse(word)?, rest))
    }

    /// The line for `message`: `"<level> <message>\n"`, line breaks inside
    /// the message replaced by spaces so one message is one line.
    pub fn format_line(self, message: &str) -> String {
        let level = self.as_str();
        let mut line = String::with_capacity(level.len() + message.len() + 2);
        line.push_str(level);
        line.push(' ');
        line.extend(message.chars().map(|character| match character {
            '\n' | '\r' => ' ',
            other => other,
        }));
        line.push('\n');
        line
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_words_are_recognised() {
        let cases = [
            ("info hello", Some((LogLevel::Info, "hello"))),
            (
                "warn disk almost full",
                Some((LogLevel::Warn, "disk almost full")),
            ),
            ("ERROR boom", Some((LogLevel::Error, "boom"))),
            ("debug x=1", Some((LogLevel::Debug, "x=1"))),
            ("info", Some((LogLevel::Info, ""))),
            ("plain println output", None),
            ("warning is not a level word", None),
            ("Info mixed case is not either", None),
            ("", None),
        ];
        for (line, expected) in cases {
            assert_eq!(LogLevel::split_line(line), expected, "line {line:?}");
        }
    }

    #[test]
    fn formatted_lines_parse_back() {
        let cases = [
            (LogLevel::Info, "server ready", "info server ready\n"),
            (
                LogLevel::Error,
                "first\nsecond\r\nthird",
                "error first second  third\n",
            ),
            (LogLevel::Warn, "", "warn \n"),
            (LogLevel::Debug, "x=1", "debug x=1\n"),
        ];
        for (level, message, line) in cases {
            assert_eq!(level.format_line(message), line);
            let parsed = LogLevel::split_line(line.trim_end_matches('\n'));
            assert_eq!(parsed.map(|(level, _)| level), Some(level), "{line:?}");
        }
    }
}
