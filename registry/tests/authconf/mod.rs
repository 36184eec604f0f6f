//! Access control for the registry's tests: an htpasswd file of `users` whose passwords are
//! `<user>-pw` (bcrypt cost 4 keeps the tests fast), the given `[auth]` tables (rules,
//! groups), and the token service when asked.

use std::path::Path;

use berth_registry::auth::AuthConfig;
use berth_registry::Config;

pub fn auth_with(dir: &Path, users: &[&str], tables: &str, token_service: bool) -> AuthConfig {
    let mut htpasswd = String::new();
    for user in users {
        let hash = bcrypt::hash(format!("{user}-pw"), 4).unwrap();
        htpasswd.push_str(&format!("{user}:{hash}\n"));
    }
    let file = dir.join("htpasswd");
    std::fs::write(&file, htpasswd).unwrap();
    let token = if token_service {
        format!(
            "[auth.token]\nservice = \"registry.test\"\nkey = {:?}\n",
            dir.join("token.pem")
        )
    } else {
        String::new()
    };
    let text = format!("[auth]\nhtpasswd = {file:?}\n{tables}\n{token}");
    Config::parse(&text, "test").unwrap().auth.unwrap()
}
