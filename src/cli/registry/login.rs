//! `berth login` and `berth logout`: credentials checked against the registry, then kept in
//! docker's `config.json` (or the credential helper it names), where `pull` and `push`, and
//! docker itself, find them.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use berth_client::config::ClientConfig;
use berth_client::remote::config::{docker_config_path, normalise_auth_key};
use berth_client::remote::credentials::DockerConfig;
use berth_client::remote::{Credential, Remote};
use clap::Args;

use crate::cli::globals::block_on;

#[derive(Args)]
pub struct LoginArgs {
    /// Registry to log in to (docker.io when omitted)
    server: Option<String>,
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users of this host: prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry to log out from (docker.io when omitted)
    server: Option<String>,
}

/// The host a server argument names, as credentials are keyed.
fn host_of(server: Option<&str>) -> Result<String> {
    let server = server.unwrap_or(berth_client::reference::DEFAULT_REGISTRY);
    let host = normalise_auth_key(server);
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
        bail!("invalid registry {server:?}");
    }
    Ok(host)
}

fn prompt(question: &str) -> Result<String> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a line from the terminal without echoing it.
fn prompt_hidden(question: &str) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning off echo")?;
    let answer = prompt(question);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    answer
}

pub fn login(a: LoginArgs) -> Result<i32> {
    let host = host_of(a.server.as_deref())?;
    let tty = std::io::stdin().is_terminal();
    if a.password_stdin && a.username.is_none() {
        bail!("--password-stdin needs --username");
    }
    if a.password.is_some() {
        eprintln!(
            "WARNING! Using --password on the command line is insecure. Use --password-stdin."
        );
    }
    let username = match a.username {
        Some(u) => u,
        None if tty => prompt("Username: ")?,
        None => bail!("cannot perform an interactive login from a non-TTY device: use -u and --password-stdin"),
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = a.password {
        p
    } else if tty {
        prompt_hidden("Password: ")?
    } else {
        bail!("cannot perform an interactive login from a non-TTY device: use --password-stdin");
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password must not be empty");
    }
    let credential = Credential { username, password };

    // Check the credential before keeping it: the registry's API base, answering its challenge.
    let mut config = ClientConfig::load()?.remote_config()?;
    config.helpers = Default::default();
    config.credentials.insert(host.clone(), credential.clone());
    let remote = Remote::new(config);
    let target = match a.server.as_deref() {
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
            s.trim_end_matches('/').to_string()
        }
        _ => host.clone(),
    };
    block_on(async { Ok(remote.ping(&target).await?) })?;

    let path = docker_config_path().context("no HOME or DOCKER_CONFIG to keep credentials in")?;
    let mut file = DockerConfig::open(&path)?;
    match file.store(&host, &credential)? {
        Some(helper) => println!("Credentials kept by docker-credential-{helper}."),
        None => eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.",
            path.display()
        ),
    }
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> Result<i32> {
    let host = host_of(a.server.as_deref())?;
    let path = docker_config_path().context("no HOME or DOCKER_CONFIG holding credentials")?;
    let mut file = DockerConfig::open(&path)?;
    if file.erase(&host)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(0)
}
