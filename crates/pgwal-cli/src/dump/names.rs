//! `--names CONNSTR`: relation file numbers, database and tablespace OIDs translated to names
//! over ordinary (non-replication) connections, one per database the WAL names.
//!
//! A relation is looked up with `pg_filenode_relation(tablespace, filenode)` in its own
//! database (it reads that database's catalogs and relation map); an index or TOAST table is
//! named with the table it belongs to. A file number no catalog holds now (the relation was
//! dropped, truncated or rewritten since) is [`Resolved::NotFound`].

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, Context};
use pgwal::conninfo::Config;
use pgwal::replication::ReplicationClient;
use pgwal::wal::RelFileLocator;

/// What the catalogs say about one relation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// `database.schema.relation`, its kind, and for an index or TOAST table what it is
    /// (`index`, `TOAST`, `TOAST index`) of which table.
    Found {
        name: String,
        kind: String,
        of: Option<(String, String)>,
    },
    /// No relation has this file now.
    NotFound,
}

/// Names for the numbers in some WAL.
#[derive(Default)]
pub(crate) struct Names {
    databases: HashMap<u32, String>,
    tablespaces: HashMap<u32, String>,
    relations: HashMap<RelFileLocator, Resolved>,
}

const NOT_FOUND: Resolved = Resolved::NotFound;

impl Names {
    /// A relation's names (not found if it was not asked for).
    pub fn relation(&self, r: RelFileLocator) -> &Resolved {
        self.relations.get(&r).unwrap_or(&NOT_FOUND)
    }

    /// A database's name.
    pub fn database(&self, oid: u32) -> Option<&str> {
        self.databases.get(&oid).map(String::as_str)
    }

    /// A tablespace's name.
    pub fn tablespace(&self, oid: u32) -> Option<&str> {
        self.tablespaces.get(&oid).map(String::as_str)
    }
}

/// `database.schema.relation`; shared catalogs (no database) as `schema.relation`.
fn qualify(datname: &str, nsp: &str, rel: &str) -> String {
    if datname.is_empty() {
        format!("{nsp}.{rel}")
    } else {
        format!("{datname}.{nsp}.{rel}")
    }
}

/// The pg_class kind letter as a word.
fn kind_name(k: &str) -> &'static str {
    match k {
        "r" => "table",
        "i" | "I" => "index",
        "t" => "TOAST table",
        "S" => "sequence",
        "m" => "materialized view",
        "p" => "partitioned table",
        "f" => "foreign table",
        "v" => "view",
        "c" => "composite type",
        _ => "relation",
    }
}

/// Runs `sql` and returns its rows as text columns (NULL as `None`).
async fn query(c: &mut ReplicationClient, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let sets = c.simple_query(sql).await?;
    let mut out = Vec::new();
    for set in sets {
        for row in set.rows {
            let mut cols = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                cols.push(row.get_str(i)?.map(str::to_owned));
            }
            out.push(cols);
        }
    }
    Ok(out)
}

/// Relations looked up per `VALUES` list.
const CHUNK: usize = 500;

/// Looks up `rels` (all of database `datname`, or shared ones) over `c`.
async fn lookup(
    c: &mut ReplicationClient,
    datname: &str,
    rels: &[RelFileLocator],
    out: &mut HashMap<RelFileLocator, Resolved>,
) -> anyhow::Result<()> {
    for chunk in rels.chunks(CHUNK) {
        let values: Vec<String> = chunk
            .iter()
            .map(|r| format!("({}::oid,{}::oid)", r.spc, r.rel))
            .collect();
        // The owner of an index is its table; of a TOAST table (or its index) the table
        // whose reltoastrelid it is.
        let sql = format!(
            "SELECT v.spc, v.node, n.nspname, c.relname, c.relkind, tn.nspname, t.relname, \
                    ic.relkind \
             FROM (VALUES {}) AS v(spc, node) \
             LEFT JOIN pg_class c ON c.oid = pg_filenode_relation(v.spc, v.node) \
             LEFT JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_index i ON i.indexrelid = c.oid \
             LEFT JOIN pg_class ic ON ic.oid = i.indrelid \
             LEFT JOIN pg_class t ON t.oid = COALESCE( \
                 (SELECT m.oid FROM pg_class m \
                  WHERE m.reltoastrelid = COALESCE(i.indrelid, c.oid) LIMIT 1), \
                 i.indrelid) \
             LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace",
            values.join(",")
        );
        for row in query(c, &sql).await? {
            let num = |i: usize| -> Option<u32> { row.get(i)?.as_deref()?.parse().ok() };
            let text = |i: usize| -> Option<&str> { row.get(i)?.as_deref() };
            let (Some(spc), Some(node)) = (num(0), num(1)) else {
                continue;
            };
            let Some(r) = chunk.iter().find(|r| r.spc == spc && r.rel == node) else {
                continue;
            };
            let resolved = match (text(2), text(3), text(4)) {
                (Some(nsp), Some(rel), Some(kind)) => {
                    let of = match (text(5), text(6)) {
                        (Some(tnsp), Some(trel)) => {
                            let what = match (kind, text(7)) {
                                ("t", _) => "TOAST",
                                ("i" | "I", Some("t")) => "TOAST index",
                                _ => "index",
                            };
                            Some((what.to_owned(), qualify(datname, tnsp, trel)))
                        }
                        _ => None,
                    };
                    Resolved::Found {
                        name: qualify(datname, nsp, rel),
                        kind: kind_name(kind).to_owned(),
                        of,
                    }
                }
                _ => Resolved::NotFound,
            };
            out.insert(*r, resolved);
        }
    }
    Ok(())
}

/// Resolves `rels` with the server `connstr` points to (libpq's conventions: `key=value` or
/// URI, `PG*` variables, `.pgpass`).
pub(crate) fn resolve(connstr: &str, rels: &[RelFileLocator]) -> anyhow::Result<Names> {
    let config = Config::parse(connstr).map_err(|e| anyhow!("--names: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(resolve_async(config, rels))
}

async fn resolve_async(config: Config, rels: &[RelFileLocator]) -> anyhow::Result<Names> {
    let mut names = Names::default();
    let mut first = ReplicationClient::connect_sql(&config)
        .await
        .context("--names: could not connect")?;
    for row in query(&mut first, "SELECT oid, datname, datallowconn FROM pg_database").await? {
        if let (Some(Some(oid)), Some(Some(name))) = (row.first(), row.get(1)) {
            if let Ok(oid) = oid.parse() {
                names.databases.insert(oid, name.clone());
            }
        }
    }
    for row in query(&mut first, "SELECT oid, spcname FROM pg_tablespace").await? {
        if let (Some(Some(oid)), Some(Some(name))) = (row.first(), row.get(1)) {
            if let Ok(oid) = oid.parse() {
                names.tablespaces.insert(oid, name.clone());
            }
        }
    }
    let mut by_db: BTreeMap<u32, Vec<RelFileLocator>> = BTreeMap::new();
    for r in rels {
        by_db.entry(r.db).or_default().push(*r);
    }
    let current: Option<String> = query(&mut first, "SELECT current_database()")
        .await?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten());
    for (db, list) in by_db {
        if db == 0 {
            // Shared catalogs: any database's connection sees them.
            lookup(&mut first, "", &list, &mut names.relations).await?;
            continue;
        }
        let Some(datname) = names.databases.get(&db).cloned() else {
            // The database is gone: so are its relations.
            continue;
        };
        if current.as_deref() == Some(datname.as_str()) {
            lookup(&mut first, &datname, &list, &mut names.relations).await?;
            continue;
        }
        let mut cfg = config.clone();
        cfg.dbname = Some(datname.clone());
        match ReplicationClient::connect_sql(&cfg).await {
            Ok(mut c) => {
                lookup(&mut c, &datname, &list, &mut names.relations).await?;
                let _ = c.close().await;
            }
            Err(e) => {
                // template0 and databases that refuse connections: their relations stay
                // numbers (marked not found), with a word why.
                eprintln!(
                    "{}: warning: --names: could not connect to database \"{datname}\": {e}",
                    crate::prog::name()
                );
            }
        }
    }
    let _ = first.close().await;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_kinds() {
        assert_eq!(qualify("", "pg_catalog", "pg_database"), "pg_catalog.pg_database");
        assert_eq!(qualify("app", "public", "t"), "app.public.t");
        assert_eq!(kind_name("i"), "index");
        assert_eq!(kind_name("t"), "TOAST table");
    }
}
