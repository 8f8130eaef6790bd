//! `hash-password`: the argon2id hash of a password, for `[[tenants.<name>.basic]]`.
//!
//! The password is read from standard input: typed without echo at a terminal (twice, to catch
//! a typo), or piped (`printf %s "$PW" | scim-sidecar hash-password`; one trailing newline is
//! dropped). Only the hash is printed; the password goes nowhere else.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, bail};

/// `hash-password` flags (none).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(super) fn run(_args: &Args) -> anyhow::Result<()> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("again: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was hashed");
        }
        first
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from standard input (is it UTF-8?)")?;
        let one_line = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        one_line.to_owned()
    };
    println!("{}", hashed(&password)?);
    Ok(())
}

/// The hash of a password that is fit to be one.
fn hashed(password: &str) -> anyhow::Result<String> {
    if password.is_empty() {
        bail!("the password is empty");
    }
    if password.contains(['\n', '\r']) {
        bail!("the password spans several lines; give one line");
    }
    crate::credentials::password::hash(password.as_bytes()).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::hashed;

    #[test]
    fn empty_and_multi_line_passwords_are_refused() {
        assert!(hashed("").unwrap_err().to_string().contains("empty"));
        assert!(hashed("a\nb").unwrap_err().to_string().contains("one line"));
        let h = hashed("pw").unwrap();
        assert!(crate::credentials::password::parse(&h).is_ok(), "{h}");
    }
}
