//! Every form of digest, repository name, tag and reference the store must refuse, and the
//! forms it must accept: data-driven, one row per input.

use berth_storage::{Digest, DigestError, NameError, Reference, RepoName, Tag};

const HEX64: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn digests() {
    let hex128 = "a".repeat(128);
    let ok = [format!("sha256:{HEX64}"), format!("sha512:{hex128}")];
    for d in &ok {
        let parsed: Digest = d.parse().unwrap();
        assert_eq!(parsed.as_str(), d);
    }
    type Check = fn(&DigestError) -> bool;
    let bad: Vec<(String, Check)> = vec![
        (HEX64.to_string(), |e| {
            matches!(e, DigestError::MissingAlgorithm(_))
        }),
        (String::new(), |e| {
            matches!(e, DigestError::MissingAlgorithm(_))
        }),
        (format!("md5:{HEX64}"), |e| {
            matches!(e, DigestError::UnsupportedAlgorithm(_))
        }),
        (format!("SHA256:{HEX64}"), |e| {
            matches!(e, DigestError::UnsupportedAlgorithm(_))
        }),
        (format!(":{HEX64}"), |e| {
            matches!(e, DigestError::UnsupportedAlgorithm(_))
        }),
        (format!("sha256:{}", &HEX64[1..]), |e| {
            matches!(e, DigestError::WrongLength { actual: 63, .. })
        }),
        (format!("sha256:{HEX64}0"), |e| {
            matches!(e, DigestError::WrongLength { .. })
        }),
        (format!("sha512:{HEX64}"), |e| {
            matches!(e, DigestError::WrongLength { expected: 128, .. })
        }),
        (format!("sha256:{}", HEX64.to_uppercase()), |e| {
            matches!(e, DigestError::InvalidHex(_))
        }),
        (format!("sha256:{}g", &HEX64[1..]), |e| {
            matches!(e, DigestError::InvalidHex(_))
        }),
        (format!("sha256:{}/", &HEX64[1..]), |e| {
            matches!(e, DigestError::InvalidHex(_))
        }),
        (format!("sha256:{}\0", &HEX64[1..]), |e| {
            matches!(e, DigestError::InvalidHex(_))
        }),
        (format!("sha256:../{}", &HEX64[3..]), |e| {
            matches!(e, DigestError::InvalidHex(_))
        }),
        ("sha256:".to_string(), |e| {
            matches!(e, DigestError::WrongLength { actual: 0, .. })
        }),
    ];
    for (input, check) in bad {
        let err = input.parse::<Digest>().unwrap_err();
        assert!(check(&err), "{input:?} gave {err:?}");
    }
}

#[test]
fn repository_names() {
    for ok in [
        "a",
        "library/busybox",
        "a/b/c/d",
        "my-app",
        "my--app",
        "my_app",
        "my__app",
        "my.app",
        "0/1",
        "team.a/app-1_x",
    ] {
        assert_eq!(ok.parse::<RepoName>().unwrap().as_str(), ok);
    }
    let long_component = "a".repeat(256);
    let long_path = format!("{}/{}", "a".repeat(200), "b".repeat(55));
    assert_eq!(long_path.len(), 256);
    let ok_max = format!("{}/{}", "a".repeat(200), "b".repeat(54));
    assert!(ok_max.parse::<RepoName>().is_ok());
    type Check = fn(&NameError) -> bool;
    let bad: Vec<(&str, Check)> = vec![
        ("", |e| matches!(e, NameError::EmptyName)),
        ("..", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a/../b", |e| {
            matches!(e, NameError::InvalidComponent { .. })
        }),
        ("../etc", |e| {
            matches!(e, NameError::InvalidComponent { .. })
        }),
        ("a/.", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("/a", |e| matches!(e, NameError::EmptyComponent(_))),
        ("a/", |e| matches!(e, NameError::EmptyComponent(_))),
        ("a//b", |e| matches!(e, NameError::EmptyComponent(_))),
        ("Library/busybox", |e| {
            matches!(e, NameError::InvalidComponent { .. })
        }),
        ("a\0b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("-a", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a-", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a.", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a..b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a___b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a._b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("_tags", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a/_manifests", |e| {
            matches!(e, NameError::InvalidComponent { .. })
        }),
        ("a:b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("a\\b", |e| matches!(e, NameError::InvalidComponent { .. })),
        ("é", |e| matches!(e, NameError::InvalidComponent { .. })),
        (&long_component, |e| {
            matches!(e, NameError::NameTooLong(256))
        }),
        (&long_path, |e| matches!(e, NameError::NameTooLong(256))),
    ];
    for (input, check) in bad {
        let err = input.parse::<RepoName>().unwrap_err();
        assert!(check(&err), "{input:?} gave {err:?}");
    }
}

#[test]
fn tags() {
    for ok in ["latest", "v1.0", "1", "_", "A-b_c.D", &"x".repeat(128)] {
        assert_eq!(ok.parse::<Tag>().unwrap().as_str(), ok);
    }
    let long = "x".repeat(129);
    let huge = "x".repeat(256);
    type Check = fn(&NameError) -> bool;
    let bad: Vec<(&str, Check)> = vec![
        ("", |e| matches!(e, NameError::EmptyTag)),
        (".hidden", |e| matches!(e, NameError::InvalidTag(_))),
        ("-x", |e| matches!(e, NameError::InvalidTag(_))),
        ("..", |e| matches!(e, NameError::InvalidTag(_))),
        ("a/b", |e| matches!(e, NameError::InvalidTag(_))),
        ("a:b", |e| matches!(e, NameError::InvalidTag(_))),
        ("a\0", |e| matches!(e, NameError::InvalidTag(_))),
        ("a b", |e| matches!(e, NameError::InvalidTag(_))),
        (&long, |e| matches!(e, NameError::TagTooLong(129))),
        (&huge, |e| matches!(e, NameError::TagTooLong(256))),
    ];
    for (input, check) in bad {
        let err = input.parse::<Tag>().unwrap_err();
        assert!(check(&err), "{input:?} gave {err:?}");
    }
}

#[test]
fn references() {
    assert!(matches!(
        "latest".parse::<Reference>(),
        Ok(Reference::Tag(_))
    ));
    let d = format!("sha256:{HEX64}");
    assert!(matches!(d.parse::<Reference>(), Ok(Reference::Digest(_))));
    assert!(matches!(
        "sha256:abc".parse::<Reference>(),
        Err(NameError::InvalidReference(..))
    ));
    assert!(matches!(
        "../x".parse::<Reference>(),
        Err(NameError::InvalidTag(_))
    ));
}
