//! Result sets of simple queries and replication commands: columns and text-format rows.
//!
//! The lowest layer of `replication`: [`protocol`](super::protocol) collects these from the
//! wire and [`command`](super::command) parses them into typed command results, so neither of
//! those two needs the other's types for this.

use bytes::Bytes;

/// A column of a result set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// The type OID (`25` text, `20` int8, `23` int4, `17` bytea, ...).
    pub type_oid: u32,
}

/// A data row: text-format values sharing the receive buffer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Row {
    values: Vec<Option<Bytes>>,
}

impl Row {
    /// A row with these values (`None` is SQL NULL).
    pub fn new(values: Vec<Option<Bytes>>) -> Row {
        Row { values }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if the row has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The raw bytes of value `i`; `None` for NULL or a missing column.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.values.get(i).and_then(|v| v.as_deref())
    }

    /// Value `i` as shared bytes.
    pub fn get_bytes(&self, i: usize) -> Option<&Bytes> {
        self.values.get(i).and_then(Option::as_ref)
    }

    /// Value `i` as text; `Ok(None)` for NULL or a missing column, `Err` if not UTF-8.
    pub fn get_str(&self, i: usize) -> Result<Option<&str>, std::str::Utf8Error> {
        self.get(i).map(std::str::from_utf8).transpose()
    }
}

/// The rows of one statement's result (or just its command tag).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ResultSet {
    /// The columns; empty for commands that return no rows.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Row>,
    /// The `CommandComplete` tag, e.g. `SELECT 1` or `DROP_REPLICATION_SLOT`.
    pub tag: Option<String>,
}
