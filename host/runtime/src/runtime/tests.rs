use super::*;

#[test]
fn semver_rules() {
    let v = |s: &str| semver::Version::parse(s).unwrap();
    assert!(compatible(&v("0.1.0"), &v("0.1.0")));
    assert!(!compatible(&v("0.1.0"), &v("0.2.0")));
    assert!(!compatible(&v("0.1.0"), &v("0.1.1")), "built for a newer patch than the host");
    assert!(compatible(&v("0.1.3"), &v("0.1.1")));
    assert!(!compatible(&v("0.1.0"), &v("9.0.0")));
    assert!(compatible(&v("1.4.0"), &v("1.2.0")));
    assert!(
        !compatible(&v(CONTRACT_VERSION), &v("0.1.0")),
        "0.2 added the vocabulary import; 0.1 plugins must be rebuilt"
    );
    assert!(
        !compatible(&v(CONTRACT_VERSION), &v("0.2.0")),
        "0.3 changed the transform world (tool calls); 0.2 plugins must be rebuilt"
    );
}
