//! The outbox table's name as given on the command line (`audit_outbox` or `app.audit_outbox`),
//! checked and quoted once, so no other module ever splices user text into SQL.

/// A plain (possibly schema-qualified) table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    name: String,
}

/// Letters, digits, `_` and `$`, not starting with a digit: the characters of Postgres's unquoted
/// identifiers. They are used quoted, so their case is kept (`Outbox` is not `outbox`).
fn is_plain_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|char| char.is_ascii_alphanumeric() || char == '_' || char == '$')
        && text.len() <= 59 // 63 bytes, Postgres's limit, less room for the "_dead" suffix
}

fn quote(identifier: &str) -> String {
    // Only plain identifiers get here, so quoting never needs escaping; it keeps the case as given.
    format!("\"{identifier}\"")
}

impl TableName {
    /// `table` or `schema.table`, each part a plain identifier of at most 59 characters.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let (schema, name) = match text.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, text),
        };
        for part in schema.iter().chain([&name]) {
            if !is_plain_identifier(part) {
                return Err(format!(
                    "--table {text:?}: expected table or schema.table, each a letter or _ followed by letters, digits, _ or $ (at most 59)"
                ));
            }
        }
        Ok(TableName { schema: schema.map(str::to_string), name: name.to_string() })
    }

    /// The table, quoted for SQL.
    pub fn sql(&self) -> String {
        self.with_suffix("")
    }

    /// `<table>_dead` in the same schema, quoted for SQL.
    pub fn dead_sql(&self) -> String {
        self.with_suffix("_dead")
    }

    fn with_suffix(&self, suffix: &str) -> String {
        let table = quote(&format!("{}{suffix}", self.name));
        match &self.schema {
            Some(schema) => format!("{}.{table}", quote(schema)),
            None => table,
        }
    }

    /// The table's own name, without the schema: the default LISTEN channel.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(formatter, "{schema}.{}", self.name),
            None => write!(formatter, "{}", self.name),
        }
    }
}

/// A LISTEN channel, quoted; the same rule as table names.
pub fn channel_sql(channel: &str) -> Result<String, String> {
    if is_plain_identifier(channel) {
        Ok(quote(channel))
    } else {
        Err(format!("--channel {channel:?}: expected a letter or _ followed by letters, digits, _ or $ (at most 59)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_quoted() {
        let plain = TableName::parse("audit_outbox").unwrap();
        assert_eq!(
            (plain.sql(), plain.dead_sql(), plain.name()),
            ("\"audit_outbox\"".into(), "\"audit_outbox_dead\"".into(), "audit_outbox")
        );
        let qualified = TableName::parse("app.Outbox$1").unwrap();
        assert_eq!(qualified.sql(), "\"app\".\"Outbox$1\"");
        assert_eq!(qualified.dead_sql(), "\"app\".\"Outbox$1_dead\"");
        assert_eq!(qualified.to_string(), "app.Outbox$1");
        for bad in ["", "1outbox", "a.b.c", "out box", "x\"; drop table y; --", "a.", &"t".repeat(60)] {
            let error = TableName::parse(bad).unwrap_err();
            assert!(error.starts_with("--table"), "{bad}: {error}");
        }
        assert_eq!(channel_sql("audit_outbox").unwrap(), "\"audit_outbox\"");
        assert!(channel_sql("no;such").is_err());
    }
}
