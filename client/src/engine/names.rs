//! Container and volume names: docker's rule for what a name may be, and docker-style
//! random names (`adjective_surname`) for containers created without `--name`.

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, as docker allows (at most 255 bytes: a file name).
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

const ADJECTIVES: &[&str] = &[
    "admiring", "agile", "amazing", "bold", "brave", "busy", "calm", "clever", "cool", "crisp",
    "dazzling", "eager", "elated", "epic", "fervent", "focused", "gallant", "gentle", "happy",
    "hopeful", "jolly", "keen", "kind", "lucid", "merry", "modest", "nimble", "patient", "quirky",
    "relaxed", "serene", "sharp", "steady", "sweet", "tender", "trusting", "upbeat", "vibrant",
    "wizardly", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi", "babbage", "bartik", "bohr", "cerf", "curie", "darwin", "dijkstra", "euler",
    "faraday", "fermat", "galileo", "gauss", "hamilton", "hopper", "hypatia", "joliot", "kepler",
    "knuth", "lamarr", "lovelace", "maxwell", "meitner", "noether", "pascal", "perlman", "ritchie",
    "shannon", "tesla", "thompson", "torvalds", "turing", "wing", "wozniak", "yonath",
];

/// A random `adjective_surname` that `taken` says is free (a digit is added after many
/// collisions, as docker does).
pub fn random(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let a = ADJECTIVES[fastrand() % ADJECTIVES.len()];
        let s = SURNAMES[fastrand() % SURNAMES.len()];
        let name = if attempt < 10 {
            format!("{a}_{s}")
        } else {
            format!("{a}_{s}{}", fastrand() % 10_000)
        };
        if !taken(&name) {
            return name;
        }
    }
    unreachable!()
}

fn fastrand() -> usize {
    (uuid::Uuid::new_v4().as_u128() & 0xffff_ffff) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for ok in ["web", "a1", "my_app.v2-x", "0db"] {
            assert!(super::valid(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "_x",
            ".x",
            "-x",
            "a/b",
            "a b",
            "ü1",
            &"x".repeat(256),
        ] {
            assert!(!super::valid(bad), "{bad}");
        }
        let n = super::random(|_| false);
        assert!(super::valid(&n) && n.contains('_'));
    }
}
