//! The OCI distribution-spec conformance suite (conformance/01_pull_test.go,
//! 02_push_test.go, 03_discovery_test.go, 04_management_test.go), case by case, against
//! `ferry serve`. Bad input is in `registry_errors.rs`.
//!
//! Each test starts its own `ferry serve` on a free port with filesystem storage in a
//! temp dir, so the tests run in parallel and leave nothing behind.

#[path = "support/mod.rs"]
mod support;

use serde_json::{json, Value};
use support::oci::*;
use support::{get, head, request, sha256, Response};

#[test]
fn pull() {
    let reg = Registry::start(&[]);
    let repo = "conformance/pull";
    let (config0, config1, layer) = (config_blob(0), config_blob(1), support::random_bytes(1000, 1));
    reg.push_blob(repo, &config0);
    reg.push_blob(repo, &config1);
    reg.push_blob(repo, &layer);
    let manifest0 = image_manifest((OCI_CONFIG, &config0), &[&layer], json!({}));
    let manifest1 = image_manifest((OCI_CONFIG, &config1), &[&layer], json!({}));
    let (digest0, digest1) = (sha256(&manifest0), sha256(&manifest1));
    assert_eq!(reg.put_manifest(repo, "tagtest0", OCI_MANIFEST, &manifest0).status, 201);
    assert_eq!(reg.put_manifest(repo, &digest1, OCI_MANIFEST, &manifest1).status, 201);

    // Pull blobs.
    let blob = |d: &str| reg.url(&format!("/v2/{repo}/blobs/{d}"));
    assert_eq!(head(&blob(DUMMY_DIGEST)).status, 404);
    let r = head(&blob(&sha256(&config0)));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-content-digest"), Some(sha256(&config0).as_str()));
    assert_eq!(r.header("content-length"), Some(config0.len().to_string().as_str()));
    assert!(r.body.is_empty());
    assert_spec_error(&get(&blob(DUMMY_DIGEST)), 404, "BLOB_UNKNOWN");
    let r = get(&blob(&sha256(&config0)));
    assert_eq!((r.status, &r.body), (200, &config0));
    assert_eq!(get(&blob(&sha256(&layer))).body, layer);

    // Pull manifests, by digest and by tag, HEAD and GET.
    let manifest = |reference: &str| reg.url(&format!("/v2/{repo}/manifests/{reference}"));
    assert_eq!(head(&manifest("nonexistent")).status, 404);
    for (reference, digest, bytes) in [
        (digest0.as_str(), &digest0, &manifest0),
        (digest1.as_str(), &digest1, &manifest1),
        ("tagtest0", &digest0, &manifest0),
    ] {
        let r = request("HEAD", &manifest(reference)).header("Accept", OCI_MANIFEST).send();
        assert_eq!(r.status, 200, "{reference}");
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(r.header("content-length"), Some(bytes.len().to_string().as_str()));
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        let r = request("GET", &manifest(reference)).header("Accept", OCI_MANIFEST).send();
        assert_eq!((r.status, &r.body), (200, bytes), "{reference}: byte-exact");
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    }
    assert_spec_error(&get(&manifest("nonexistent")), 404, "MANIFEST_UNKNOWN");

    // Error codes: "400 response body should contain OCI-conforming JSON message".
    let r = request("GET", &manifest("sha256:totallywrong"))
        .header("Content-Type", OCI_MANIFEST)
        .body("{}")
        .send();
    assert_spec_error(&r, 400, "DIGEST_INVALID");

    // Teardown: deletes answer 202.
    for d in [&digest0, &digest1] {
        assert_eq!(request("DELETE", &manifest(d)).send().status, 202);
    }
    for b in [&config0, &config1, &layer] {
        assert_eq!(request("DELETE", &blob(&sha256(b))).send().status, 202);
    }
}

#[test]
fn push_blob_streamed() {
    let reg = Registry::start(&[]);
    let repo = "conformance/streamed";
    let blob_a = support::random_bytes(70_000, 2);
    let r = request("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/"))).send();
    assert_eq!(r.status, 202);
    assert!(r.header("docker-upload-uuid").is_some());
    let r = request("PATCH", &reg.loc(&r))
        .header("Content-Type", "application/octet-stream")
        .body(blob_a.clone())
        .send();
    assert_eq!(r.status, 202, "PATCH with blob in body");
    assert_eq!(r.header("range"), Some(format!("0-{}", blob_a.len() - 1).as_str()));
    let r = request("PUT", &format!("{}?digest={}", reg.loc(&r), sha256(&blob_a)))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", "0")
        .send();
    assert_eq!(r.status, 201, "PUT to session URL with digest");
    assert!(r.header("location").is_some());
    assert_eq!(get(&reg.loc(&r)).body, blob_a);
}

#[test]
fn push_blob_monolithic() {
    let reg = Registry::start(&[]);
    let repo = "conformance/monolithic";
    let config = config_blob(1);
    let blob_url = reg.url(&format!("/v2/{repo}/blobs/{}", sha256(&config)));
    assert_eq!(get(&blob_url).status, 404, "GET nonexistent blob");

    // POST with digest and blob: 201 (ferry completes monolithic POSTs).
    let r = request("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&config))))
        .header("Content-Type", "application/octet-stream")
        .body(config.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("/v2/{repo}/blobs/{}", sha256(&config)).as_str()));
    assert_eq!(r.header("docker-content-digest"), Some(sha256(&config).as_str()));
    assert_eq!(get(&blob_url).status, 200);

    // POST for a session id, then PUT the whole blob.
    let layer = support::random_bytes(5000, 3);
    let r = request("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/"))).send();
    assert_eq!(r.status, 202, "POST should yield a session ID");
    let r = request("PUT", &format!("{}?digest={}", reg.loc(&r), sha256(&layer)))
        .header("Content-Type", "application/octet-stream")
        .body(layer.clone())
        .send();
    assert_eq!(r.status, 201);
    assert_eq!(get(&reg.loc(&r)).body, layer, "GET request to existing layer");

    // A zero-byte blob is a blob too.
    let r = request("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={DUMMY_DIGEST}"))).send();
    assert_eq!(r.status, 201);
    let r = get(&reg.url(&format!("/v2/{repo}/blobs/{DUMMY_DIGEST}")));
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn push_blob_chunked() {
    let reg = Registry::start(&[]);
    let repo = "conformance/chunked";
    let blob_b = support::random_bytes(20_000, 4);
    let (chunk1, chunk2) = blob_b.split_at(12_345);
    let range1 = format!("0-{}", chunk1.len() - 1);
    let range2 = format!("{}-{}", chunk1.len(), blob_b.len() - 1);
    let start = || {
        let r = request("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/")))
            .header("Content-Length", "0")
            .send();
        assert_eq!(r.status, 202);
        reg.loc(&r)
    };
    let patch = |url: &str, range: &str, body: &[u8]| {
        request("PATCH", url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range)
            .body(body)
            .send()
    };

    // Out-of-order blob upload should return 416.
    let r = patch(&start(), &range2, chunk2);
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.error_code(), "BLOB_UPLOAD_INVALID");

    let session = start();
    let r = patch(&session, &range1, chunk1);
    assert_eq!(r.status, 202, "first chunk");
    assert_eq!(r.header("range"), Some(range1.as_str()));
    // Retrying the previous chunk overlaps: 416.
    assert_eq!(patch(&session, &range1, chunk1).status, 416, "retry previous chunk");
    // An overlap that starts inside the data, and a gap, are 416 too.
    assert_eq!(patch(&session, &format!("5-{}", chunk1.len() + 4), &chunk1[..chunk1.len()]).status, 416);
    assert_eq!(patch(&session, &format!("{}-{}", chunk1.len() + 1, chunk1.len() + 1), b"x").status, 416);
    // Upload status: 204 with the range and location.
    let r = get(&session);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("range"), Some(range1.as_str()));
    let r = patch(&reg.loc(&r), &range2, chunk2);
    assert_eq!(r.status, 202, "second chunk");
    assert_eq!(r.header("range"), Some(format!("0-{}", blob_b.len() - 1).as_str()));
    let r = request("PUT", &format!("{}?digest={}", reg.loc(&r), sha256(&blob_b)))
        .header("Content-Length", "0")
        .send();
    assert_eq!(r.status, 201, "PUT with digest");
    assert_eq!(get(&reg.loc(&r)).body, blob_b);

    // The final chunk may come with the PUT (the suite's older form).
    let session = start();
    assert_eq!(patch(&session, &range1, chunk1).status, 202);
    let r = request("PUT", &format!("{session}?digest={}", sha256(&blob_b)))
        .header("Content-Range", &range2)
        .body(chunk2)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());

    // Cancel: 204, then the session is unknown.
    let session = start();
    assert_eq!(request("DELETE", &session).send().status, 204);
    assert_spec_error(&get(&session), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn cross_repository_mount() {
    let reg = Registry::start(&[]);
    let (repo, cross) = ("conformance/source", "conformance/crossmount");
    let blob_a = support::random_bytes(3000, 5);
    let digest = reg.push_blob(repo, &blob_a);
    let uploads = reg.url(&format!("/v2/{cross}/blobs/uploads/"));

    // Without `from`: a session (no automatic content discovery).
    let r = request("POST", &format!("{uploads}?mount={DUMMY_DIGEST}")).send();
    assert_eq!(r.status, 202);
    assert!(r.header("location").unwrap().starts_with(&format!("/v2/{cross}/blobs/uploads/")));
    let r = request("POST", &format!("{uploads}?mount={digest}")).send();
    assert_eq!(r.status, 202, "mount without from");

    // With `from`: mounted, 201, readable in the new repository.
    let r = request("POST", &format!("{uploads}?mount={digest}&from={repo}")).send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("/v2/{cross}/blobs/{digest}").as_str()));
    assert_eq!(get(&reg.loc(&r)).body, blob_a);

    // Mounting a blob the source does not have: a session.
    let r = request("POST", &format!("{uploads}?mount={DUMMY_DIGEST}&from={repo}")).send();
    assert_eq!(r.status, 202);
    assert!(r.header("location").unwrap().starts_with(&format!("/v2/{cross}/blobs/uploads/")));

    // Deleting from one repository leaves the other's link alone.
    assert_eq!(request("DELETE", &reg.url(&format!("/v2/{repo}/blobs/{digest}"))).send().status, 202);
    assert_eq!(get(&reg.url(&format!("/v2/{cross}/blobs/{digest}"))).status, 200);
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/blobs/{digest}"))).status, 404);
}

#[test]
fn manifest_upload() {
    let reg = Registry::start(&[]);
    let repo = "conformance/manifests";
    let config = config_blob(1);
    let layer = support::random_bytes(2000, 6);
    reg.push_blob(repo, &config);
    reg.push_blob(repo, &layer);
    let manifest = image_manifest((OCI_CONFIG, &config), &[&layer], json!({}));
    let digest = sha256(&manifest);
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/manifests/nonexistent"))).status, 404);
    for i in 0..4 {
        let r = reg.put_manifest(repo, &format!("test{i}"), OCI_MANIFEST, &manifest);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("location"), Some(format!("/v2/{repo}/manifests/{digest}").as_str()));
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    }
    // A manifest with no layers.
    let empty = image_manifest((OCI_CONFIG, &config), &[], json!({}));
    assert_eq!(reg.put_manifest(repo, "emptylayer", OCI_MANIFEST, &empty).status, 201);
    let r = request("GET", &reg.url(&format!("/v2/{repo}/manifests/{digest}")))
        .header("Accept", OCI_MANIFEST)
        .send();
    assert_eq!((r.status, &r.body), (200, &manifest));

    // `?tag=` on a push by digest tags it too (distribution-spec v1.1).
    let other = image_manifest((OCI_CONFIG, &config), &[], json!({"annotations": {"x": "y"}}));
    let r = request("PUT", &reg.url(&format!("/v2/{repo}/manifests/{}?tag=t1&tag=t2", sha256(&other))))
        .header("Content-Type", OCI_MANIFEST)
        .body(other.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/manifests/t2"))).body, other);

    // A manifest without a mediaType field is stored as the Content-Type said.
    let mut bare: Value = serde_json::from_slice(&manifest).unwrap();
    bare.as_object_mut().unwrap().remove("mediaType");
    let bare = serde_json::to_vec(&bare).unwrap();
    assert_eq!(reg.put_manifest(repo, "bare", OCI_MANIFEST, &bare).status, 201);
    let r = get(&reg.url(&format!("/v2/{repo}/manifests/bare")));
    assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
    assert_eq!(r.body, bare);

    // An index over pushed manifests.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, &manifest), descriptor(OCI_MANIFEST, &empty)],
    }))
    .unwrap();
    assert_eq!(reg.put_manifest(repo, "index", OCI_INDEX, &index).status, 201);
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/manifests/index"))).header("content-type"), Some(OCI_INDEX));

    // Teardown.
    assert_eq!(request("DELETE", &reg.url(&format!("/v2/{repo}/manifests/{digest}"))).send().status, 202);
    for b in [&config, &layer] {
        assert_eq!(
            request("DELETE", &reg.url(&format!("/v2/{repo}/blobs/{}", sha256(b)))).send().status,
            202
        );
    }
}

#[test]
fn content_discovery_tags() {
    let reg = Registry::start(&[]);
    let repo = "conformance/tags";
    let config = config_blob(2);
    reg.push_blob(repo, &config);
    let manifest = image_manifest((OCI_CONFIG, &config), &[], json!({}));
    let mut tags = vec!["test0", "test1", "test2", "test3", "B", "a", "10", "9", "_z"];
    for tag in &tags {
        assert_eq!(reg.put_manifest(repo, tag, OCI_MANIFEST, &manifest).status, 201);
    }
    tags.sort(); // lexical (byte) order: "10" < "9" < "B" < "_z" < "a" < "test0"
    let list = |query: &str| get(&reg.url(&format!("/v2/{repo}/tags/list{query}")));
    let names = |r: &Response| -> Vec<String> {
        r.json()["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
    };
    let r = list("");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], repo);
    assert_eq!(names(&r), tags);
    assert!(r.header("link").is_none());

    // `n` limits, `last` continues, `Link` points at the next page until the end.
    let mut seen = Vec::new();
    let mut next = Some(format!("/v2/{repo}/tags/list?n=4"));
    while let Some(path) = next {
        let r = get(&reg.url(&path));
        assert_eq!(r.status, 200);
        let page = names(&r);
        assert!(page.len() <= 4);
        seen.extend(page);
        next = r.header("link").map(|l| l.trim_start_matches('<').split('>').next().unwrap().to_owned());
    }
    assert_eq!(seen, tags);
    let r = list("?n=2&last=B");
    assert_eq!(names(&r), vec!["_z", "a"]);
    assert_eq!(names(&list("?n=0")), Vec::<String>::new());
    assert_spec_error(&list("?n=abc"), 400, "PAGINATION_NUMBER_INVALID");
    assert_spec_error(&get(&reg.url("/v2/conformance/never/tags/list")), 404, "NAME_UNKNOWN");
}

#[test]
fn content_discovery_referrers() {
    let reg = Registry::start(&[]);
    let repo = "conformance/referrers";
    let (type_a, type_b, type_index) =
        ("application/vnd.ferry.a", "application/vnd.ferry.b", "application/vnd.ferry.idx");
    let empty_json = b"{}".to_vec();
    assert_eq!(
        sha256(&empty_json),
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    reg.push_blob(repo, &empty_json);
    let (ref_a, ref_b) = (b"ref blob a".to_vec(), b"ref blob b".to_vec());
    reg.push_blob(repo, &ref_a);

    // The subject (manifests[4] in the suite) is pushed after some of its referrers.
    let config = config_blob(4);
    let layer = support::random_bytes(100, 7);
    let subject = image_manifest((OCI_CONFIG, &config), &[&layer], json!({}));
    let subject_desc = descriptor(OCI_MANIFEST, &subject);
    let missing_subject = image_manifest((OCI_CONFIG, &config_blob(3)), &[], json!({}));
    let annotated = |n: &str| json!({"org.opencontainers.conformance.test": n});

    let a_config = image_manifest(
        (type_a, &ref_a),
        &[&ref_a],
        json!({"subject": subject_desc, "annotations": annotated("a-config")}),
    );
    let a_layer = image_manifest(
        (EMPTY_JSON_TYPE, &empty_json),
        &[&ref_a],
        json!({"artifactType": type_a, "subject": subject_desc, "annotations": annotated("a-layer")}),
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": type_index,
        "manifests": [], "subject": subject_desc, "annotations": annotated("index"),
    }))
    .unwrap();
    for (bytes, media_type) in [(&a_config, OCI_MANIFEST), (&a_layer, OCI_MANIFEST), (&index, OCI_INDEX)] {
        let r = reg.put_manifest(repo, &sha256(bytes), media_type, bytes);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("oci-subject"), Some(sha256(&subject).as_str()));
    }
    reg.push_blob(repo, &config);
    reg.push_blob(repo, &layer);
    assert_eq!(reg.put_manifest(repo, "tagtest0", OCI_MANIFEST, &subject).status, 201);
    reg.push_blob(repo, &ref_b);
    let b_config = image_manifest(
        (type_b, &ref_b),
        &[&ref_b],
        json!({"subject": subject_desc, "annotations": annotated("b-config")}),
    );
    let b_layer = image_manifest(
        (EMPTY_JSON_TYPE, &empty_json),
        &[&ref_b],
        json!({"artifactType": type_b, "subject": subject_desc, "annotations": annotated("b-layer")}),
    );
    let c_layer = image_manifest(
        (EMPTY_JSON_TYPE, &empty_json),
        &[&ref_b],
        json!({"artifactType": type_b, "subject": descriptor(OCI_MANIFEST, &missing_subject), "annotations": annotated("c")}),
    );
    for bytes in [&b_config, &b_layer] {
        let r = reg.put_manifest(repo, &sha256(bytes), OCI_MANIFEST, bytes);
        assert_eq!(r.header("oci-subject"), Some(sha256(&subject).as_str()));
    }
    let r = reg.put_manifest(repo, &sha256(&c_layer), OCI_MANIFEST, &c_layer);
    assert_eq!(r.status, 201, "a missing subject is allowed");
    assert_eq!(r.header("oci-subject"), Some(sha256(&missing_subject).as_str()));

    let referrers = |digest: &str, query: &str| {
        let r = get(&reg.url(&format!("/v2/{repo}/referrers/{digest}{query}")));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some(OCI_INDEX));
        r
    };
    let manifests = |r: &Response| r.json()["manifests"].as_array().unwrap().clone();

    assert!(manifests(&referrers(DUMMY_DIGEST, "")).is_empty(), "nonexistent subject: empty index");
    let all = manifests(&referrers(&sha256(&subject), ""));
    assert_eq!(all.len(), 5);
    for d in &all {
        assert_eq!(d["annotations"].as_object().unwrap().len(), 1, "{d}");
        assert!(d["size"].as_u64().unwrap() > 0);
    }
    let find = |bytes: &[u8]| all.iter().find(|d| d["digest"] == sha256(bytes)).cloned().unwrap();
    assert_eq!(find(&a_config)["artifactType"], type_a, "config media type is the artifact type");
    assert_eq!(find(&a_layer)["artifactType"], type_a);
    assert_eq!(find(&index)["artifactType"], type_index);
    assert_eq!(find(&index)["mediaType"], OCI_INDEX);

    let r = referrers(&sha256(&subject), &format!("?artifactType={type_a}"));
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(manifests(&r).len(), 2);
    let missing = manifests(&referrers(&sha256(&missing_subject), ""));
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["digest"], sha256(&c_layer));
    assert_spec_error(&get(&reg.url(&format!("/v2/{repo}/referrers/sha256:nope"))), 400, "DIGEST_INVALID");

    // Deleting a referrer removes it from the list.
    assert_eq!(
        request("DELETE", &reg.url(&format!("/v2/{repo}/manifests/{}", sha256(&b_layer)))).send().status,
        202
    );
    assert_eq!(manifests(&referrers(&sha256(&subject), "")).len(), 4);
}

#[test]
fn content_management() {
    let reg = Registry::start(&[]);
    let repo = "conformance/management";
    let config = config_blob(3);
    let layer = support::random_bytes(500, 8);
    reg.push_blob(repo, &config);
    reg.push_blob(repo, &layer);
    let manifest = image_manifest((OCI_CONFIG, &config), &[&layer], json!({}));
    let digest = sha256(&manifest);
    for tag in ["tagtest0", "other", "third"] {
        assert_eq!(reg.put_manifest(repo, tag, OCI_MANIFEST, &manifest).status, 201);
    }
    let tag_count =
        || get(&reg.url(&format!("/v2/{repo}/tags/list"))).json()["tags"].as_array().unwrap().len();
    assert_eq!(tag_count(), 3);

    // Delete a tag: 202, the manifest stays.
    assert_eq!(request("DELETE", &reg.url(&format!("/v2/{repo}/manifests/tagtest0"))).send().status, 202);
    assert_eq!(tag_count(), 2);
    assert_spec_error(&get(&reg.url(&format!("/v2/{repo}/manifests/tagtest0"))), 404, "MANIFEST_UNKNOWN");
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/manifests/{digest}"))).status, 200);
    // Delete by digest: 202, and every tag pointing at it goes too.
    assert_eq!(request("DELETE", &reg.url(&format!("/v2/{repo}/manifests/{digest}"))).send().status, 202);
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/manifests/{digest}"))).status, 404);
    assert_eq!(get(&reg.url(&format!("/v2/{repo}/manifests/other"))).status, 404);
    assert_eq!(tag_count(), 0);
    assert_eq!(request("DELETE", &reg.url(&format!("/v2/{repo}/manifests/{digest}"))).send().status, 404);

    // Blob delete: 202, then 404.
    for b in [&config, &layer] {
        let url = reg.url(&format!("/v2/{repo}/blobs/{}", sha256(b)));
        assert_eq!(request("DELETE", &url).send().status, 202);
        assert_spec_error(&get(&url), 404, "BLOB_UNKNOWN");
        assert_spec_error(&request("DELETE", &url).send(), 404, "BLOB_UNKNOWN");
    }
}

#[test]
fn catalog_pagination() {
    let reg = Registry::start(&[]);
    let config = config_blob(9);
    let manifest = image_manifest((OCI_CONFIG, &config), &[], json!({}));
    let repos = ["b/x", "a", "c", "a/deeper/still"];
    for repo in repos {
        reg.push_blob(repo, &config);
        assert_eq!(reg.put_manifest(repo, "v1", OCI_MANIFEST, &manifest).status, 201);
    }
    // A repository with only a blob (no manifest) is not listed.
    reg.push_blob("blobonly", &config);
    let r = get(&reg.url("/v2/_catalog"));
    assert_eq!(r.json()["repositories"], json!(["a", "a/deeper/still", "b/x", "c"]));
    let r = get(&reg.url("/v2/_catalog?n=2"));
    assert_eq!(r.json()["repositories"], json!(["a", "a/deeper/still"]));
    assert_eq!(r.header("link"), Some("</v2/_catalog?n=2&last=a/deeper/still>; rel=\"next\""));
    let r = get(&reg.url("/v2/_catalog?n=2&last=a/deeper/still"));
    assert_eq!(r.json()["repositories"], json!(["b/x", "c"]));
    assert!(r.header("link").is_none());
}
