//! `audit-export users add | verify | list` and `audit-export tokens create | revoke`.

use clap::{Args, Subcommand};

use super::{Cli, CliError};
use crate::users::{self, Role, UserError};

impl From<UserError> for CliError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Db(e) => e.into(),
            other => CliError::bad_input(other.to_string()),
        }
    }
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user and print a new API token (shown once).
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, compliance or viewer.
        #[arg(long, value_enum)]
        role: Role,
        /// The e-mail address is not verified (it cannot receive exports).
        #[arg(long)]
        unverified: bool,
    },
    /// Record that a user's e-mail address is verified (`--unverified` to undo).
    Verify {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// Mark the address unverified instead.
        #[arg(long)]
        unverified: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Issue another token for a user (printed once).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
    },
    /// Revoke one token (given in full), or every token of a user.
    Revoke {
        /// The token to revoke.
        token: Option<String>,
        #[arg(long, requires = "email")]
        org: Option<String>,
        #[arg(long, requires = "org")]
        email: Option<String>,
    },
}

fn now_ms() -> i64 {
    crate::time::Clock::system().now_ms()
}

pub fn users(cli: &Cli, a: &UsersArgs) -> Result<(), CliError> {
    // Only adding a user may create the database.
    let conn = match a.command {
        UsersCommand::Add { .. } => crate::db::open_data_dir(&cli.data_dir)?,
        _ => crate::db::open_existing(&cli.data_dir)?,
    };
    match &a.command {
        UsersCommand::Add {
            org,
            email,
            name,
            role,
            unverified,
        } => {
            let (u, token) =
                users::add_user(&conn, org, email, name, *role, !unverified, now_ms())?;
            println!("{token}");
            eprintln!(
                "added {} <{}> to {} as {}{}; the token above is shown only once",
                u.name,
                u.email,
                u.organization_id,
                u.role,
                if u.email_verified {
                    ""
                } else {
                    " (unverified)"
                }
            );
        }
        UsersCommand::Verify {
            org,
            email,
            unverified,
        } => {
            let u = users::set_email_verified(&conn, org, email, !unverified)?;
            println!(
                "{} <{}> in {}: e-mail {}",
                u.name,
                u.email,
                u.organization_id,
                if u.email_verified {
                    "verified"
                } else {
                    "unverified"
                }
            );
        }
        UsersCommand::List { org } => {
            for u in users::list_users(&conn, org.as_deref())? {
                println!(
                    "{}  {:<10}  {:<11}  {}  {}{}",
                    u.id,
                    u.organization_id,
                    u.role.as_str(),
                    u.email,
                    u.name,
                    if u.email_verified {
                        ""
                    } else {
                        "  (unverified)"
                    }
                );
            }
        }
    }
    Ok(())
}

pub fn tokens(cli: &Cli, a: &TokensArgs) -> Result<(), CliError> {
    let conn = crate::db::open_existing(&cli.data_dir)?;
    match &a.command {
        TokensCommand::Create { org, email } => {
            let u = users::find_by_email(&conn, org, email)?.ok_or(UserError::NotFound)?;
            println!("{}", users::issue_token(&conn, u.id, now_ms())?);
        }
        TokensCommand::Revoke { token, org, email } => {
            let n = match (token, org, email) {
                (Some(t), None, None) => users::revoke_token(&conn, t, now_ms())?,
                (None, Some(o), Some(e)) => users::revoke_user_tokens(&conn, o, e, now_ms())?,
                _ => {
                    return Err(CliError::bad_input(
                        "give a TOKEN, or --org and --email (not both)",
                    ))
                }
            };
            if n == 0 {
                return Err(CliError::bad_input("no such active token"));
            }
            eprintln!("revoked {n} token(s)");
        }
    }
    Ok(())
}
