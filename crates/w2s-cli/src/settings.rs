//! `w2s run`'s setting options, made from [`w2s_experiment::settings::SETTINGS`]: the same names,
//! help and checks as a sweep file's `[experiment]` keys, collected into such a table.
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use w2s_experiment::settings::{default_text, insert, SETTINGS};

/// The settings given on the command line, as an `[experiment]` table.
#[derive(Debug, Clone, Default)]
pub struct SettingArgs(pub toml::Table);

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut table = toml::Table::new();
        for s in SETTINGS {
            let text = if s.value.is_empty() {
                m.get_flag(s.flag).then_some("")
            } else {
                m.get_one::<String>(s.flag).map(String::as_str)
            };
            if let Some(text) = text {
                let value = (s.parse)(text).map_err(|e| {
                    clap::Error::raw(
                        clap::error::ErrorKind::ValueValidation,
                        format!("--{}: {e}\n", s.flag),
                    )
                })?;
                insert(&mut table, s.key, value);
            }
        }
        Ok(SettingArgs(table))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for SettingArgs {
    fn augment_args(mut cmd: Command) -> Command {
        for s in SETTINGS {
            let default = default_text(s);
            let help = if default.is_empty() {
                s.help.to_string()
            } else {
                format!("{} {default}", s.help)
            };
            let mut arg = Arg::new(s.flag).long(s.flag).help(help);
            arg = if s.value.is_empty() {
                arg.action(ArgAction::SetTrue)
            } else {
                arg.value_name(s.value).action(ArgAction::Set)
            };
            // Two options that set one key cannot both be given.
            for other in SETTINGS
                .iter()
                .filter(|o| o.key == s.key && o.flag != s.flag)
            {
                arg = arg.conflicts_with(other.flag);
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
