//! Identical twins in an object archive: one segment stored in two or more forms (`X` and
//! `X.zst`, `X.partial` and `X.gz.partial`) holding the same WAL. A receiver killed with
//! `kill -9` while an upload was in flight can leave one: its next run stores the segment
//! again, perhaps in another compression, before the first upload is seen.
//!
//! `archive verify` reports twins (a warning when they hold the same WAL after decompression,
//! an error when not); `archive cleanup` on an object store settles identical ones to one form
//! with [`settle_plan`]. The form kept is the most preferred
//! ([`preference`](crate::source::preference): plain, zstd, LZ4, gzip): the rule the receiver
//! applies when it finds a twin of what it uploaded, so every writer keeps the same form and
//! the WAL always stays stored. Twins that differ are left as they are.

use crate::segment::WalFileName;
use crate::source::WalDirectory;
use crate::storage::local::{describe_difference, Existing};
use crate::storage::object::{ObjectArchive, ObjectError};

/// Identical forms of one segment: the one kept and the others, to remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The form kept (the most preferred).
    pub kept: String,
    /// The other forms: the same WAL, to remove.
    pub removed: Vec<String>,
}

/// Two forms of one segment that hold different WAL (left as they are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The preferred form.
    pub first: String,
    /// The form that differs from it.
    pub other: String,
    /// How they differ.
    pub reason: String,
}

/// The twins among the segments of `listing` (an index of `store`) that `keep` accepts (by
/// file name; the others are about to go anyway): each segment stored in several forms of the
/// same kind (complete, or `.partial`) is read (each form once, decompressed) and its forms
/// compared with the preferred one. All the same: [`Settled`]; any different: a [`Conflict`]
/// for each, and the segment's forms are all kept.
pub fn settle_plan(
    store: &ObjectArchive,
    listing: &WalDirectory,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<Settled>, Vec<Conflict>), ObjectError> {
    let mut settled = Vec::new();
    let mut conflicts = Vec::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for (w, _) in listing.segments() {
        let WalFileName::Segment { tli, log, seg, .. } = *w else {
            continue;
        };
        for partial in [false, true] {
            let forms: Vec<String> = listing
                .forms(tli, log, seg)
                .filter(|e| {
                    matches!(e.wal, WalFileName::Segment { partial: p, .. } if p == partial)
                        && keep(&e.name)
                })
                .map(|e| e.name.clone())
                .collect();
            if forms.len() > 1 {
                groups.push(forms);
            }
        }
    }
    for forms in groups {
        let Some(first) = store.get_wal(&forms[0])? else {
            continue;
        };
        let mut same = Vec::new();
        let mut differ = Vec::new();
        for other in &forms[1..] {
            match store.get_wal(other)? {
                // Gone meanwhile: nothing to settle.
                None => {}
                Some(wal) => match describe_difference(&wal, &first) {
                    Existing::Same => same.push(other.clone()),
                    Existing::Differs(reason) => differ.push(Conflict {
                        first: forms[0].clone(),
                        other: other.clone(),
                        reason,
                    }),
                },
            }
        }
        if !differ.is_empty() {
            conflicts.extend(differ);
        } else if !same.is_empty() {
            settled.push(Settled {
                kept: forms[0].clone(),
                removed: same,
            });
        }
    }
    Ok((settled, conflicts))
}
