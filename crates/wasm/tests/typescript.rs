//! The TypeScript declarations in `src/exports.rs` are written by hand (the exports take
//! `JsValue`s, so wasm-bindgen cannot derive them). This test, run on the host, holds them
//! to the Rust side, so neither can change without the other:
//!
//! - the declared functions are exactly the `#[wasm_bindgen]` exports, with their arity;
//! - `Repo`, `Auth`, `CopyOptions` and `DiffOptions` name exactly the fields and option keys
//!   that `src/input.rs` and `src/jobs.rs` accept;
//! - the result interfaces name every field of the core's structs, optional ones included;
//! - a value built from each declared result type (`ProgressEvent`, `CopyReport`,
//!   `DiffReport`) reads into the core's type and writes back unchanged, and every
//!   string-literal union lists exactly the variants of the core's enum.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};

use ferry_core::budget::BudgetReport;
use ferry_core::copy::RegistryRequests;
use ferry_core::diff::{DiffReport, TagDiff, TagStatus};
use ferry_core::progress::{
    BlobOutcome, Event, Failure, ImageOutcome, ImageReport, JobStatus, Report, RequestCount, Summary,
};
use ferry_core::window::WindowReport;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};

const EXPORTS: &str = include_str!("../src/exports.rs");
const INPUT: &str = include_str!("../src/input.rs");
const JOBS: &str = include_str!("../src/jobs.rs");

#[test]
fn declared_functions_are_the_exports() {
    let declared: BTreeMap<String, usize> =
        declarations().functions.into_iter().map(|f| (f.name, f.arity)).collect();
    assert_eq!(
        declared,
        rust_exports(),
        "`export function`s in TYPES vs #[wasm_bindgen] fns in src/exports.rs"
    );
}

#[test]
fn declared_arguments_are_what_the_inputs_accept() {
    let d = declarations();
    assert_eq!(d.members("Repo"), rust_fields(INPUT, "struct RepoInput"), "Repo vs RepoInput (src/input.rs)");
    assert_eq!(d.members("DiffSide"), rust_fields(INPUT, "struct RepoInput"), "DiffSide vs RepoInput");
    assert_eq!(d.members("Auth"), rust_fields(INPUT, "struct AuthInput"), "Auth vs AuthInput (src/input.rs)");
    assert_eq!(
        d.members("CopyOptions"),
        rust_strings(JOBS, "const COPY_OPTIONS"),
        "CopyOptions vs COPY_OPTIONS"
    );
    assert_eq!(
        d.members("DiffOptions"),
        rust_strings(JOBS, "const DIFF_OPTIONS"),
        "DiffOptions vs DIFF_OPTIONS"
    );
}

#[test]
fn every_progress_event_round_trips_through_the_core() {
    let d = declarations();
    let mut names = BTreeSet::new();
    let unions = ["ProgressEvent", "DiffEvent"].map(|union| match d.resolve(&Ty::Name(union.into())) {
        Ty::Union(events) => events.clone(),
        _ => panic!("{union} is not a union of event objects"),
    });
    for event in unions.iter().flatten() {
        let sample = d.sample(event, "");
        names.insert(sample["event"].as_str().expect("every event has a literal `event`").to_owned());
        round_trip::<Event>(&sample);
        if let Some(outcome) = d.member(event, "outcome") {
            assert_eq!(d.literals(outcome), variants::<BlobOutcome>(), "blob_done.outcome vs BlobOutcome");
        }
        if let Some(status) = d.member(event, "status") {
            assert_eq!(d.literals(status), variants::<JobStatus>(), "job_finished.status vs JobStatus");
        }
    }
    assert_eq!(
        names,
        variants::<Event>(),
        "ProgressEvent's and DiffEvent's `event`s vs the core's Event variants"
    );
}

#[test]
fn copy_and_diff_reports_round_trip_through_the_core() {
    let d = declarations();
    let report = Ty::Name("CopyReport".into());
    round_trip::<Report>(&d.sample(&report, ""));
    assert_eq!(
        d.literals(d.member(&report, "status").unwrap()),
        variants::<JobStatus>(),
        "CopyReport.status"
    );
    let image = Ty::Name("ImageReport".into());
    assert_eq!(
        d.literals(d.member(&image, "outcome").unwrap()),
        variants::<ImageOutcome>(),
        "ImageReport.outcome"
    );

    round_trip::<DiffReport>(&d.sample(&Ty::Name("DiffReport".into()), ""));
    // `diff` always has a destination, so its rows are never `listed` (a one-sided listing,
    // which `listTags` and `inspect` turn into other shapes).
    let mut statuses = variants::<TagStatus>();
    assert!(statuses.remove("listed"), "the core's TagStatus has no `listed` any more: update this test");
    assert_eq!(d.literals(&Ty::Name("TagStatus".into())), statuses, "TagStatus");
}

#[test]
fn declared_interfaces_name_every_field_of_the_core_structs() {
    let d = declarations();
    let pairs = [
        ("CopyReport", fields::<Report>()),
        ("Summary", fields::<Summary>()),
        ("Failure", fields::<Failure>()),
        ("WindowReport", fields::<WindowReport>()),
        ("RequestCount", fields::<RequestCount>()),
        ("BudgetReport", fields::<BudgetReport>()),
        ("RegistryRequests", fields::<RegistryRequests>()),
        ("ImageReport", fields::<ImageReport>()),
        ("DiffReport", fields::<DiffReport>()),
        ("DiffRow", fields::<TagDiff>()),
    ];
    for (name, rust) in pairs {
        assert_eq!(d.members(name), rust, "{name}'s members vs the core struct's fields");
    }
}

/// The fields serde knows for the struct `T`, optional ones included: what its derived
/// `Deserialize` hands to `deserialize_struct`.
fn fields<T: DeserializeOwned>() -> BTreeSet<String> {
    struct Fields(Vec<&'static str>);
    impl<'de> de::Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields.to_vec();
            Err(de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut recorder = Fields(Vec::new());
    let _ = T::deserialize(&mut recorder);
    assert!(!recorder.0.is_empty(), "{} is not a struct with named fields", std::any::type_name::<T>());
    recorder.0.into_iter().map(str::to_owned).collect()
}

/// `sample` read into `T` and written back is `sample` again: the declaration names every
/// field `T` writes (optional ones are given), and no field `T` lacks.
fn round_trip<T: DeserializeOwned + Serialize>(sample: &Value) {
    let typed: T = serde_json::from_value(sample.clone())
        .unwrap_or_else(|e| panic!("the declared shape does not read as the core's type: {e}\n{sample:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, sample, "the core writes another shape than the declaration");
}

/// The variants serde knows for `T`, from its "unknown variant" message.
fn variants<T: DeserializeOwned>() -> BTreeSet<String> {
    let probe = "~not-a-variant~";
    let error = serde_json::from_value::<T>(Value::String(probe.into()))
        .or_else(|_| serde_json::from_value::<T>(serde_json::json!({ "event": probe })))
        .err()
        .expect("no enum accepts the probe")
        .to_string();
    let listed = error.split("expected one of ").nth(1).or_else(|| error.split("expected ").nth(1));
    let listed = listed.unwrap_or_else(|| panic!("no variants listed in {error:?}"));
    listed.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

// ---------------------------------------------------------------- the Rust side, as text

/// `#[wasm_bindgen]` functions of src/exports.rs: their JavaScript names and arity.
fn rust_exports() -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut attribute: Option<&str> = None;
    for line in EXPORTS.lines().map(str::trim) {
        if line.starts_with("#[wasm_bindgen") {
            attribute = Some(line);
        } else if let (Some(attr), Some(rest)) =
            (attribute, line.strip_prefix("pub async fn ").or_else(|| line.strip_prefix("pub fn ")))
        {
            let (rust_name, after) = rest.split_once('(').unwrap();
            let params = after.split_once(')').unwrap().0;
            let arity = params.split(',').filter(|p| !p.trim().is_empty()).count();
            let js_name = attr
                .split_once("js_name = ")
                .map(|(_, n)| n.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap());
            out.insert(js_name.unwrap_or(rust_name).to_owned(), arity);
            attribute = None;
        } else if !line.starts_with("#[") {
            attribute = None;
        }
    }
    out
}

/// The field names of the struct whose header line contains `header`.
fn rust_fields(source: &str, header: &str) -> BTreeSet<String> {
    let body = source.split_once(&format!("{header} {{")).expect(header).1.split_once("\n}").unwrap().0;
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with("//"))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim_start_matches("pub ").trim().to_owned()))
        .collect()
}

/// The string literals of the array constant whose declaration contains `header`.
fn rust_strings(source: &str, header: &str) -> BTreeSet<String> {
    let value = source.split_once(header).expect(header).1.split_once('=').unwrap().1;
    let array = value.split_once(';').unwrap().0;
    array.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

// ---------------------------------------------------------------- the declarations

#[derive(Debug, Clone)]
enum Ty {
    Name(String),
    Literal(String),
    Object(Vec<(String, Ty)>),
    Array(Box<Ty>),
    Union(Vec<Ty>),
    Function,
}

struct Function {
    name: String,
    arity: usize,
}

struct Declarations {
    types: BTreeMap<String, Ty>,
    functions: Vec<Function>,
}

/// The TypeScript text of `#[wasm_bindgen(typescript_custom_section)]`, parsed.
fn declarations() -> Declarations {
    let section = EXPORTS.split_once("typescript_custom_section").expect("a typescript_custom_section").1;
    let text = section.split_once("r#\"").unwrap().1.split_once("\"#").unwrap().0;
    let mut p = Parser { tokens: tokenize(text), at: 0 };
    let mut d = Declarations { types: BTreeMap::new(), functions: Vec::new() };
    while p.at < p.tokens.len() {
        p.expect("export");
        match p.next().as_str() {
            "type" => {
                let name = p.next();
                p.expect("=");
                let ty = p.ty();
                p.expect(";");
                d.types.insert(name, ty);
            }
            "interface" => {
                let name = p.next();
                let ty = p.object();
                d.types.insert(name, ty);
            }
            "function" => {
                let name = p.next();
                let arity = p.params();
                p.expect(":");
                p.ty();
                p.expect(";");
                d.functions.push(Function { name, arity });
            }
            other => panic!("unexpected `export {other}`"),
        }
    }
    d
}

impl Declarations {
    fn resolve<'a>(&'a self, ty: &'a Ty) -> &'a Ty {
        match ty {
            Ty::Name(name) => self.types.get(name).map_or(ty, |t| self.resolve(t)),
            _ => ty,
        }
    }

    fn member<'a>(&'a self, ty: &'a Ty, name: &str) -> Option<&'a Ty> {
        let Ty::Object(members) = self.resolve(ty) else { panic!("{ty:?} is not an object type") };
        members.iter().find(|(n, _)| n.trim_end_matches('?') == name).map(|(_, t)| t)
    }

    fn members(&self, name: &str) -> BTreeSet<String> {
        let ty = Ty::Name(name.into());
        let Ty::Object(members) = self.resolve(&ty) else { panic!("{name} is not declared") };
        members.iter().map(|(n, _)| n.trim_end_matches('?').to_owned()).collect()
    }

    fn literals(&self, ty: &Ty) -> BTreeSet<String> {
        match self.resolve(ty) {
            Ty::Literal(s) => BTreeSet::from([s.clone()]),
            Ty::Union(alternatives) => alternatives.iter().flat_map(|t| self.literals(t)).collect(),
            other => panic!("{other:?} is not a string-literal union"),
        }
    }

    /// A value of the type with every optional member given and a non-null choice for
    /// every `| null`, so that nothing the core would skip is left out. Strings under a key
    /// that holds a digest are digests; numbers are 7, but a shard's `index` is 0, below its
    /// count.
    fn sample(&self, ty: &Ty, key: &str) -> Value {
        match ty {
            Ty::Name(name) => match name.as_str() {
                "string" if key.contains("digest") || key == "rewritten_from" => {
                    Value::String(ferry_core::digest::Digest::sha256(key.as_bytes()).to_string())
                }
                "string" => Value::String(format!("{key} text")),
                "number" if key == "index" => Value::from(0),
                "number" => Value::from(7),
                "boolean" => Value::Bool(true),
                _ => {
                    self.sample(self.types.get(name).unwrap_or_else(|| panic!("{name} is not declared")), key)
                }
            },
            Ty::Literal(s) => Value::String(s.clone()),
            Ty::Object(members) => {
                let map: Map<String, Value> = members
                    .iter()
                    .map(|(name, t)| {
                        let name = name.trim_end_matches('?');
                        (name.to_owned(), self.sample(t, name))
                    })
                    .collect();
                Value::Object(map)
            }
            Ty::Array(element) => Value::Array(vec![self.sample(element, key)]),
            Ty::Union(alternatives) => {
                let chosen = alternatives
                    .iter()
                    .find(|t| !matches!(t, Ty::Name(n) if n == "null" || n == "undefined"));
                self.sample(chosen.expect("a union with a non-null member"), key)
            }
            Ty::Function => panic!("no sample for a function type ({key})"),
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let literal: String = chars.by_ref().take_while(|&c| c != '"').collect();
                tokens.push(format!("\"{literal}"));
            }
            '=' if chars.peek() == Some(&'>') => {
                chars.next();
                tokens.push("=>".into());
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = c.to_string();
                while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_' || **c == '$')
                {
                    word.push(c);
                    chars.next();
                }
                tokens.push(word);
            }
            c => tokens.push(c.to_string()),
        }
    }
    tokens
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &str {
        self.tokens.get(self.at).map_or("", String::as_str)
    }

    fn next(&mut self) -> String {
        let token = self.peek().to_owned();
        self.at += 1;
        token
    }

    fn expect(&mut self, want: &str) {
        let got = self.next();
        assert_eq!(got, want, "in the TypeScript declarations, near token {}", self.at);
    }

    /// `A | B | ...`, with an optional leading `|`.
    fn ty(&mut self) -> Ty {
        if self.peek() == "|" {
            self.next();
        }
        let mut alternatives = vec![self.postfix()];
        while self.peek() == "|" {
            self.next();
            alternatives.push(self.postfix());
        }
        if alternatives.len() == 1 {
            alternatives.pop().unwrap()
        } else {
            Ty::Union(alternatives)
        }
    }

    fn postfix(&mut self) -> Ty {
        let mut ty = self.primary();
        while self.peek() == "[" {
            self.expect("[");
            self.expect("]");
            ty = Ty::Array(Box::new(ty));
        }
        ty
    }

    fn primary(&mut self) -> Ty {
        match self.peek() {
            "{" => self.object(),
            "(" => {
                self.params();
                self.expect("=>");
                self.ty();
                Ty::Function
            }
            t if t.starts_with('"') => Ty::Literal(self.next()[1..].to_owned()),
            _ => {
                let name = self.next();
                if self.peek() == "<" {
                    // A generic such as Promise<T>: only its name matters here.
                    self.next();
                    self.ty();
                    self.expect(">");
                }
                Ty::Name(name)
            }
        }
    }

    /// `{ name?: Type; ... }`; optional members keep their `?` in the name.
    fn object(&mut self) -> Ty {
        self.expect("{");
        let mut members = Vec::new();
        while self.peek() != "}" {
            let mut name = self.next();
            if self.peek() == "?" {
                self.next();
                name.push('?');
            }
            self.expect(":");
            members.push((name, self.ty()));
            if matches!(self.peek(), ";" | ",") {
                self.next();
            }
        }
        self.expect("}");
        Ty::Object(members)
    }

    /// `(a: T, b?: U)`: the number of parameters.
    fn params(&mut self) -> usize {
        self.expect("(");
        let mut count = 0;
        while self.peek() != ")" {
            self.next();
            if self.peek() == "?" {
                self.next();
            }
            self.expect(":");
            self.ty();
            count += 1;
            if self.peek() == "," {
                self.next();
            }
        }
        self.expect(")");
        count
    }
}
