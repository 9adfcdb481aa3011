//! Command-line scanning the way PostgreSQL's tools see it (glibc's `getopt_long`): options and
//! operands may be mixed, `--` ends the options, long names may be abbreviated to any unique
//! prefix, and each mistake has glibc's wording. The scan only checks the shape of the command
//! line; the values are checked afterwards, in the order they were given, by each subcommand.
//!
//! The option table comes from the clap definition of the subcommand, so there is one list of
//! options per tool. The scanned options are handed back to clap in a canonical spelling
//! (`--name=value`, then `--` and the operands), which clap then always accepts.

use std::fmt;

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HasArg {
    No,
    Required,
    /// Only as `--name=value` (`-z` never takes one), like `--stats[=record]`.
    Optional,
}

/// One option of the table.
#[derive(Clone, Debug)]
struct Spec {
    id: String,
    short: Option<char>,
    long: Option<String>,
    has_arg: HasArg,
}

/// A command-line mistake, worded as glibc's `getopt_long` words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetoptError {
    /// `--name` matches no option.
    UnrecognizedLong(String),
    /// `-c` is not an option.
    InvalidShort(char),
    /// `-c` needs a value and none followed.
    ShortNeedsValue(char),
    /// `--name` needs a value and none followed.
    LongNeedsValue(String),
    /// `--name=value` for an option without a value.
    LongTakesNoValue(String),
    /// `--prefix` abbreviates several options.
    Ambiguous(String, Vec<String>),
}

impl fmt::Display for GetoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetoptError::UnrecognizedLong(a) => write!(f, "unrecognized option '{a}'"),
            GetoptError::InvalidShort(c) => write!(f, "invalid option -- '{c}'"),
            GetoptError::ShortNeedsValue(c) => write!(f, "option requires an argument -- '{c}'"),
            GetoptError::LongNeedsValue(n) => write!(f, "option '--{n}' requires an argument"),
            GetoptError::LongTakesNoValue(n) => {
                write!(f, "option '--{n}' doesn't allow an argument")
            }
            GetoptError::Ambiguous(a, names) => {
                write!(f, "option '{a}' is ambiguous; possibilities:")?;
                for n in names {
                    write!(f, " '--{n}'")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for GetoptError {}

/// One option as given, in command-line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// The clap id of the option.
    pub id: String,
    /// The value, if one was given.
    pub value: Option<String>,
}

/// The scanned command line.
#[derive(Clone, Debug, Default)]
pub struct Scanned {
    /// The options, in the order given.
    pub options: Vec<Given>,
    /// The operands (non-option arguments), in order.
    pub operands: Vec<String>,
    /// Canonical spelling for clap: options, then `--` and the operands.
    canonical: Vec<String>,
}

impl Scanned {
    /// Whether option `id` was given.
    pub fn has(&self, id: &str) -> bool {
        self.options.iter().any(|g| g.id == id)
    }

    /// The arguments to give clap (without the program name).
    pub fn canonical(&self) -> &[String] {
        &self.canonical
    }
}

/// The option table of `cmd` (built), plus the extra flags `extra` as (id, short, long). An
/// extra flag named `help` replaces clap's help options.
fn specs(cmd: &clap::Command, extra: &[(&str, Option<char>, &str)]) -> Vec<Spec> {
    let own_help = extra.iter().any(|(_, _, long)| *long == "help");
    let mut v: Vec<Spec> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional())
        .filter(|a| !(own_help && matches!(a.get_action(), clap::ArgAction::Help)))
        .map(|a| {
            let has_arg = if !a.get_action().takes_values() {
                HasArg::No
            } else if a.get_num_args().is_some_and(|n| n.min_values() == 0) {
                HasArg::Optional
            } else {
                HasArg::Required
            };
            Spec {
                id: a.get_id().to_string(),
                short: a.get_short(),
                long: a.get_long().map(str::to_owned),
                has_arg,
            }
        })
        .collect();
    for (id, short, long) in extra {
        v.push(Spec {
            id: (*id).to_owned(),
            short: *short,
            long: Some((*long).to_owned()),
            has_arg: HasArg::No,
        });
    }
    v
}

/// Scans `args` (without the program name) against the options of `cmd`, plus `extra` flags
/// (id, short, long) that clap does not know about (such as `--version`). When an abbreviation
/// matches several long options and some of them are in `native` (the PostgreSQL tool's own
/// long options), only those count, so an abbreviation the PostgreSQL tool accepts still works.
pub fn scan(
    cmd: &clap::Command,
    extra: &[(&str, Option<char>, &str)],
    native: &[&str],
    args: &[String],
) -> Result<Scanned, GetoptError> {
    let mut cmd = cmd.clone();
    cmd.build();
    let specs = specs(&cmd, extra);
    let mut out = Scanned::default();
    let push = |out: &mut Scanned, s: &Spec, value: Option<String>| {
        if !extra.iter().any(|(id, _, _)| *id == s.id) {
            out.canonical.push(match (&s.long, &value) {
                (Some(l), Some(v)) => format!("--{l}={v}"),
                (Some(l), None) => format!("--{l}"),
                (None, _) => format!("-{}", s.short.unwrap_or('?')),
            });
            if let (None, Some(v)) = (&s.long, &value) {
                out.canonical.push(v.clone());
            }
        }
        out.options.push(Given {
            id: s.id.clone(),
            value,
        });
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let exact = specs.iter().find(|s| s.long.as_deref() == Some(name));
            let spec = match exact {
                Some(s) => s,
                None => {
                    let mut hits: Vec<&Spec> = specs
                        .iter()
                        .filter(|s| s.long.as_deref().is_some_and(|l| l.starts_with(name)))
                        .collect();
                    let is_native =
                        |s: &&Spec| s.long.as_deref().is_some_and(|l| native.contains(&l));
                    if hits.len() > 1 && hits.iter().any(is_native) {
                        hits.retain(is_native);
                    }
                    match hits.as_slice() {
                        [] => return Err(GetoptError::UnrecognizedLong(arg.clone())),
                        [one] => *one,
                        many => {
                            return Err(GetoptError::Ambiguous(
                                format!("--{name}"),
                                many.iter().filter_map(|s| s.long.clone()).collect(),
                            ))
                        }
                    }
                }
            };
            let long = spec.long.clone().unwrap_or_default();
            let value = match (spec.has_arg, value) {
                (HasArg::No, Some(_)) => return Err(GetoptError::LongTakesNoValue(long)),
                (HasArg::No, None) | (HasArg::Optional, None) => None,
                (_, Some(v)) => Some(v),
                (HasArg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(GetoptError::LongNeedsValue(long)),
                },
            };
            push(&mut out, spec, value);
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            out.operands.push(arg.clone());
            continue;
        };
        for (at, c) in cluster.char_indices() {
            let spec = specs
                .iter()
                .find(|s| s.short == Some(c))
                .ok_or(GetoptError::InvalidShort(c))?;
            if spec.has_arg != HasArg::Required {
                push(&mut out, spec, None);
                continue;
            }
            let rest = &cluster[at + c.len_utf8()..];
            let value = if !rest.is_empty() {
                rest.to_owned()
            } else if let Some(v) = args.get(i) {
                i += 1;
                v.clone()
            } else {
                return Err(GetoptError::ShortNeedsValue(c));
            };
            push(&mut out, spec, Some(value));
            break;
        }
    }
    if !out.operands.is_empty() {
        out.canonical.push("--".to_owned());
        out.canonical.extend(out.operands.iter().cloned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("t")
            .arg(Arg::new("end").short('e').long("end"))
            .arg(
                Arg::new("follow")
                    .short('f')
                    .long("follow")
                    .action(ArgAction::SetTrue),
            )
            .arg(Arg::new("fork").short('F').long("fork"))
            .arg(Arg::new("format").long("format"))
            .arg(
                Arg::new("stats")
                    .short('z')
                    .long("stats")
                    .num_args(0..=1)
                    .require_equals(true),
            )
            .arg(Arg::new("seg").num_args(0..=2))
    }

    fn s(args: &[&str]) -> Result<Scanned, GetoptError> {
        let v: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        scan(
            &cmd(),
            &[("version", Some('V'), "version")],
            &["end", "follow", "fork", "stats"],
            &v,
        )
    }

    #[test]
    fn mixed_order_abbreviations_and_clusters() {
        let r = s(&["a", "-fe0/1", "--fol", "--end", "x", "b", "--", "-q"]).unwrap();
        assert_eq!(r.operands, ["a", "b", "-q"]);
        assert_eq!(s(&["--form=x"]).unwrap().options[0].id, "format");
        let ids: Vec<&str> = r.options.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["follow", "end", "follow", "end"]);
        assert_eq!(r.options[1].value.as_deref(), Some("0/1"));
        assert_eq!(
            r.canonical(),
            [
                "--follow",
                "--end=0/1",
                "--follow",
                "--end=x",
                "--",
                "a",
                "b",
                "-q"
            ]
        );
        assert!(s(&["-V"]).unwrap().has("version"));
        assert_eq!(s(&["-z"]).unwrap().options[0].value, None);
    }

    #[test]
    fn glibc_wording_for_each_mistake() {
        let e = |a: &[&str]| s(a).unwrap_err().to_string();
        assert_eq!(e(&["--foo=bar"]), "unrecognized option '--foo=bar'");
        assert_eq!(e(&["-k"]), "invalid option -- 'k'");
        assert_eq!(e(&["-z=record"]), "invalid option -- '='");
        assert_eq!(e(&["-e"]), "option requires an argument -- 'e'");
        assert_eq!(e(&["--end"]), "option '--end' requires an argument");
        assert_eq!(
            e(&["--follow=x"]),
            "option '--follow' doesn't allow an argument"
        );
        // `--format` is not native: PostgreSQL's own abbreviations keep their meaning.
        assert_eq!(
            e(&["--fo"]),
            "option '--fo' is ambiguous; possibilities: '--follow' '--fork'"
        );
    }
}
