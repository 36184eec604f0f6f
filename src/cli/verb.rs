//! One verb, two spellings: `berth stop` and `berth container stop`, `berth images` and
//! `berth image ls`, as docker registers each command constructor at the top level and under
//! its object.
//!
//! An object's shared verbs are one clap enum (`container::ContainerVerb`), flattened into the
//! top-level command and, wrapped in [`Object`], into the object's command. Where docker spells
//! a verb differently under the object (`ps` → `container ls`, aliases `ps` and `list`), the
//! verb enum's [`Respell`] table says so, and [`Object`] renames the subcommand and parses it
//! back into the same variant. Nothing is listed twice.

use clap::{ArgMatches, Command, FromArgMatches, Subcommand};

/// A verb spelled otherwise under its object.
pub struct Respelling<V> {
    /// The name at the top level (the verb enum's own name for it).
    pub top: &'static str,
    /// The name under the object.
    pub object: &'static str,
    /// Other names under the object (docker's aliases), shown in help.
    pub aliases: &'static [&'static str],
    /// Builds the verb from its matches.
    pub parse: fn(&mut ArgMatches) -> Result<V, clap::Error>,
}

/// A verb enum with verbs spelled otherwise under the object.
pub trait Respell: Subcommand + Sized + 'static {
    fn respellings() -> Vec<Respelling<Self>>;
}

/// An object's shared verbs as they appear under the object (`#[command(flatten)]` it).
pub struct Object<V>(pub V);

impl<V: Respell> Object<V> {
    fn renamed(name: &str) -> Option<Respelling<V>> {
        V::respellings()
            .into_iter()
            .find(|r| r.object == name || r.aliases.contains(&name))
    }
}

impl<V: Respell> FromArgMatches for Object<V> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        let renamed = m.subcommand_name().and_then(Self::renamed);
        match renamed {
            Some(r) => {
                let (_, mut sub) = m.remove_subcommand().expect("a subcommand was named");
                (r.parse)(&mut sub).map(Object)
            }
            None => V::from_arg_matches_mut(m).map(Object),
        }
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<V: Respell> Subcommand for Object<V> {
    fn augment_subcommands(cmd: Command) -> Command {
        let respellings = V::respellings();
        V::augment_subcommands(cmd).mut_subcommands(|c| {
            match respellings.iter().find(|r| r.top == c.get_name()) {
                Some(r) => c.name(r.object).visible_aliases(r.aliases),
                None => c,
            }
        })
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        let respellings = V::respellings();
        if respellings
            .iter()
            .any(|r| r.object == name || r.aliases.contains(&name))
        {
            return true;
        }
        // A top-level spelling that is not also one under the object (`images`).
        !respellings.iter().any(|r| r.top == name) && V::has_subcommand(name)
    }
}
