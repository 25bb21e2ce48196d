use super::*;

fn d(name: &str) -> Digest {
    Digest::sha256(name.as_bytes())
}

fn image(repo: &str, name: &str, tagged: bool, blobs: &[&str]) -> ManifestEntry {
    ManifestEntry {
        repo: repo.into(),
        digest: d(name),
        tagged,
        recent: false,
        subject: None,
        children: Vec::new(),
        blobs: blobs.iter().map(|b| d(b)).collect(),
    }
}

fn index(repo: &str, name: &str, tagged: bool, children: &[&str]) -> ManifestEntry {
    ManifestEntry { children: children.iter().map(|c| d(c)).collect(), ..image(repo, name, tagged, &[]) }
}

fn referrer(repo: &str, name: &str, subject: &str, blobs: &[&str]) -> ManifestEntry {
    ManifestEntry { subject: Some(d(subject)), ..image(repo, name, false, blobs) }
}

fn names(set: &BTreeSet<Digest>, all: &[&str]) -> Vec<String> {
    all.iter().filter(|n| set.contains(&d(n))).map(|n| n.to_string()).collect()
}

const ALL: &[&str] = &[
    "m1",
    "m2",
    "idx",
    "child-a",
    "child-b",
    "sig",
    "sig-of-sig",
    "orphan-sig",
    "c1",
    "l1",
    "c2",
    "l2",
    "la",
    "lb",
    "sigblob",
    "shared",
];

#[test]
fn marking_table() {
    let store = vec![
        image("r", "m1", true, &["c1", "l1", "shared"]),
        image("r", "m2", false, &["c2", "l2", "shared"]),
        index("r", "idx", true, &["child-a", "child-b"]),
        image("r", "child-a", false, &["la"]),
        image("r", "child-b", false, &["lb"]),
        referrer("r", "sig", "idx", &["sigblob"]),
        referrer("r", "sig-of-sig", "sig", &[]),
        referrer("r", "orphan-sig", "m2", &[]),
        // The same child digest in another repository does not keep r's copy alive.
        image("other", "child-b", false, &["lb"]),
    ];
    struct Case {
        name: &'static str,
        delete_untagged: bool,
        live: &'static [&'static str],
        dead_manifests: &'static [(&'static str, &'static str)],
    }
    let cases = [
        Case {
            name: "every manifest is a root without --delete-untagged",
            delete_untagged: false,
            live: ALL,
            dead_manifests: &[],
        },
        Case {
            name: "tags, index children and referrers of live subjects, transitively",
            delete_untagged: true,
            live: &[
                "m1",
                "idx",
                "child-a",
                "child-b",
                "sig",
                "sig-of-sig",
                "c1",
                "l1",
                "la",
                "lb",
                "sigblob",
                "shared",
            ],
            dead_manifests: &[("other", "child-b"), ("r", "m2"), ("r", "orphan-sig")],
        },
    ];
    for case in cases {
        let policy = Policy { delete_untagged: case.delete_untagged, ..Policy::default() };
        let marked = mark(&store, &policy);
        assert_eq!(names(&marked.live_blobs, ALL), case.live, "{}", case.name);
        let mut dead = marked.dead_manifests.clone();
        dead.sort();
        let mut want: Vec<(String, Digest)> =
            case.dead_manifests.iter().map(|(r, n)| (r.to_string(), d(n))).collect();
        want.sort();
        assert_eq!(dead, want, "{}", case.name);
    }
}

fn blob(name: &str, size: u64, age: Option<u64>) -> BlobEntry {
    BlobEntry { digest: d(name), size, age_secs: age }
}

#[test]
fn sweep_table() {
    let policy =
        |grace, uploads| Policy { delete_untagged: true, grace_secs: grace, upload_max_age_secs: uploads };
    let first =
        mark(&[image("r", "kept", true, &["live"]), image("r", "gone", false, &["dead"])], &policy(0, None));
    // A push between mark and sweep: an untagged-yet manifest reusing "reused", and a new
    // upload linked as "fresh".
    let mut pushed = image("r", "pushed", false, &["reused"]);
    pushed.recent = true;
    let second = mark(
        &[image("r", "kept", true, &["live"]), image("r", "gone", false, &["dead"]), pushed],
        &policy(0, None),
    );
    let blobs = [
        blob("kept", 10, Some(100)),
        blob("live", 20, Some(100)),
        blob("gone", 30, Some(100)),
        blob("dead", 40, Some(100)),
        blob("reused", 50, Some(100)),
        blob("fresh", 60, Some(100)),
        blob("young", 70, Some(5)),
        blob("ageless", 80, None),
    ];
    let new_links: BTreeSet<Digest> = [d("fresh")].into();
    let uploads = [
        UploadEntry { repo: "r".into(), id: "old".into(), age_secs: 7200 },
        UploadEntry { repo: "r".into(), id: "new".into(), age_secs: 60 },
    ];
    struct Case {
        name: &'static str,
        policy: Policy,
        blobs: &'static [&'static str],
        bytes: u64,
        uploads: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "no grace: dead in both marks, never newly linked",
            policy: policy(0, None),
            blobs: &["gone", "dead", "young", "ageless"],
            bytes: 30 + 40 + 70 + 80,
            uploads: &[],
        },
        Case {
            name: "grace keeps young blobs and those of unknown age",
            policy: policy(10, Some(3600)),
            blobs: &["gone", "dead"],
            bytes: 70,
            uploads: &["old"],
        },
    ];
    for case in cases {
        let plan = sweep(&first, &second, &blobs, &new_links, &uploads, &case.policy);
        let got: Vec<Digest> = plan.blobs.iter().map(|b| b.digest.clone()).collect();
        let want: Vec<Digest> = case.blobs.iter().map(|n| d(n)).collect();
        assert_eq!(got, want, "{}", case.name);
        assert_eq!(plan.bytes(), case.bytes, "{}", case.name);
        assert_eq!(plan.manifests, vec![("r".to_string(), d("gone"))], "{}", case.name);
        let ids: Vec<&str> = plan.uploads.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, case.uploads, "{}", case.name);
    }
}

#[test]
fn a_manifest_untagged_only_after_the_first_mark_stays() {
    let policy = Policy { delete_untagged: true, ..Policy::default() };
    let first = mark(&[image("r", "m", true, &["l"])], &policy);
    let second = mark(&[image("r", "m", false, &["l"])], &policy);
    let plan = sweep(
        &first,
        &second,
        &[blob("m", 1, Some(9)), blob("l", 1, Some(9))],
        &BTreeSet::new(),
        &[],
        &policy,
    );
    assert_eq!(plan, Sweep::default());
}

#[test]
fn parse_reads_references_and_refuses_garbage() {
    let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},
      "layers":[],
      "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}}"#;
    let entry = ManifestEntry::parse(
        "r",
        d("x"),
        false,
        "application/vnd.oci.image.manifest.v1+json",
        bytes.to_vec(),
    )
    .unwrap();
    assert_eq!(entry.blobs, vec![Digest::sha256(b"")]);
    assert_eq!(entry.subject, Some(Digest::sha256(b"")));
    let err = ManifestEntry::parse("r", d("x"), true, "application/json", b"nope".to_vec()).unwrap_err();
    assert!(err.to_string().contains("repository r"), "{err}");
}
