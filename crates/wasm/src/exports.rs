//! The JavaScript API: `listTags`, `inspect`, `diff`, `copy` and `version`.
//!
//! Every promise rejects with an `Error` whose `message` is one line: `name` is
//! `InputError` for bad arguments, `NetworkError` (with `registry`) when `fetch` itself
//! failed, `AbortError` when the caller's signal fired, and `Error` otherwise (with the
//! core's `kind` of failure when it has one). Results
//! are the core's own JSON: the same as the CLI's `--json`, `--progress json` and
//! `--report`.

use wasm_bindgen::prelude::*;

use crate::jobs;
use crate::transport::BrowserOptions;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Basic credentials, or a bearer token. Kept in memory only. */
export type Auth = { username?: string; password?: string; token?: string };
/** A repository on a registry. `registry` is a base URL, e.g. "http://127.0.0.1:5000". */
export type Repo = { registry: string; repository: string; auth?: Auth };
/**
 * A side of a diff: a repository, or a whole registry when `repository` is left out (on
 * the destination it is then a prefix the source's repositories are compared under).
 */
export type DiffSide = { registry: string; repository?: string; auth?: Auth };

export interface InspectResult {
  reference: string;
  digest: string;
  mediaType: string;
  /** Manifest(s), configs and layers, in bytes. */
  size: number;
  /** "linux/amd64", "linux/arm64/v8"; [] for a single-platform image without one. */
  platforms: string[];
}

/** What went wrong (ferry-core's `ErrorKind`): pick a message from it. */
export type FailureKind =
  | "not_found" | "unauthorized" | "rate_limited" | "unavailable" | "integrity"
  | "invalid_answer" | "unsupported" | "invalid_name" | "refused" | "cancelled" | "tls";
/** A failure with its kind; a rejected promise's `Error` carries `kind` too when known. */
export interface KindedError { kind: FailureKind; message: string }

export type TagStatus = "in_sync" | "missing" | "different" | "extra";
export interface DiffRow {
  repository: string;
  tag: string;
  status: TagStatus;
  source_digest: string | null;
  destination_digest: string | null;
  media_type?: string;
  platforms?: string[];
  size?: number;
  referrers?: ReferrerDiff[];
}
/** One referrer of a tag's manifest (signature, SBOM, attestation) as both sides list it. */
export interface ReferrerDiff {
  digest?: string; tag?: string; artifact_type?: string; size?: number; status: TagStatus | "listed";
}
export interface DiffReport {
  rows: DiffRow[];
  in_sync: number;
  missing: number;
  different: number;
  extra: number;
  referrers_in_sync?: number; referrers_missing?: number; referrers_extra?: number;
  errors: KindedError[];
}
export interface DiffOptions {
  /** Also read the source's manifests: platforms and total size per tag. */
  details?: boolean;
  /** Also compare each tag's referrers (signatures, SBOMs, attestations) on both sides. */
  referrers?: boolean;
  /**
   * With a whole-registry `src`: compare these repositories (at most 10,000, each a valid
   * name) instead of every repository of the catalogs.
   */
  repositories?: string[];
  /** Each repository pair's rows as soon as it is compared, and retries and backoffs. */
  onEvent?: (event: DiffEvent) => void;
  /** Aborting stops the diff, aborts its requests and rejects with an AbortError. */
  signal?: AbortSignal;
}
/**
 * A diff's progress: `repository_diffed` carries one pair's rows and errors exactly as the
 * final report does (`destination_repository` is absent only when reading one side).
 */
export type DiffEvent =
  | { event: "repository_diffed"; source_repository: string; destination_repository?: string;
      rows: DiffRow[]; errors: KindedError[] }
  | { event: "retry_scheduled"; target: string; retry: number; delay_ms: number; reason: string }
  | { event: "window_shrunk"; registry: string; class: ActionClass; window: number; reason: string }
  | { event: "budget_paused"; registry: string; limit?: number; window_s?: number; resume_in_ms: number };

export interface Failure { source: string; destination: string; reason: string; kind: FailureKind; retryable: boolean }
/** One share of a sharded job, from 0: `ferry sync --shard 1/4`. */
export interface Shard { index: number; count: number }
export interface Summary {
  images: number; copied: number; skipped: number; failed: number;
  blobs_transferred: number; blobs_mounted: number; blobs_present: number;
  bytes_transferred: number; requests: number; transfers: number; retries: number;
  elapsed_ms: number; rounds: number; dry_run?: boolean; immutable?: number; bytes_to_copy?: number; repositories?: number; shard?: Shard; failures?: Failure[];
  rate_limits?: WindowReport[]; requests_by?: RequestCount[]; stopped?: number; budgets?: BudgetReport[];
  forecast?: RegistryRequests[]; referrers?: ReferrerTotals;
}
/** What became of the images' referrers (signatures, SBOMs, attestations). */
export interface ReferrerTotals { copied: number; skipped: number; failed: number; dropped?: number; indexed?: number }
/** A registry's advertised request budget (`ratelimit-*`, `RateLimit`): what this job counted against it, and its waits. */
export interface BudgetReport {
  registry: string; limit?: number; window_s?: number; remaining?: number; counted: number; pauses: number; paused_ms: number;
}
/** In a dry run: the requests the real run will make to a registry, and those counting against a budget (manifest GETs). */
export interface RegistryRequests { registry: string; requests: number; counted: number }
/** A registry's requests of one kind, as its rate limiter counts them. */
export type ActionClass = "manifest_read" | "blob_read" | "upload" | "mount" | "listing";
/** A window that was pushed back (429/503): how often, and the smallest it got (absent at fixed concurrency). */
export interface WindowReport { registry: string; class: ActionClass; pushbacks: number; smallest_window?: number }
/** What a small request was for: an action class, or a token request. */
export type RequestClass = ActionClass | "token";
/** Small requests one registry answered with one status (null: no answer), for one class. */
export interface RequestCount { registry: string; class: RequestClass; status: number | null; count: number }
/** One progress event: a line of `ferry sync --progress json`. The last is `job_finished`. */
export type ProgressEvent =
  | { event: "plan_failed"; source: string; destination: string; reason: string; kind: FailureKind; retryable: boolean }
  | { event: "plan_ready"; images: number; repositories: number; immutable?: number; shard?: Shard }
  | { event: "round_started"; round: number; images: number; listings: number }
  | { event: "image_started"; image: number; source: string; destination: string }
  | { event: "image_skipped"; image: number; source: string; destination: string; digest: string }
  | { event: "blob_progress"; image: number; digest: string; bytes: number; total: number }
  | { event: "blob_done"; image: number; digest: string; size: number; outcome: "present" | "mounted" | "transferred" }
  | { event: "retry_scheduled"; target: string; retry: number; delay_ms: number; reason: string }
  | { event: "window_shrunk"; registry: string; class: ActionClass; window: number; reason: string }
  | { event: "budget_paused"; registry: string; limit?: number; window_s?: number; resume_in_ms: number }
  | { event: "image_done"; image: number; source: string; destination: string; digest: string; bytes: number;
      rewritten_from?: string; dry_run?: boolean }
  | { event: "image_failed"; image: number; source: string; destination: string; reason: string; kind: FailureKind;
      retryable: boolean }
  | { event: "referrer_queued"; image: number; subject: number; subject_digest: string; artifact_type?: string }
  | { event: "referrers_dropped"; image: number; subject_digest: string; count: number; reason: string }
  | { event: "referrers_failed"; image: number; subject_digest: string; reason: string; kind: FailureKind }
  | { event: "job_finished"; status: "succeeded" | "failed"; summary: Summary };
export interface ImageReport {
  source: string; destination: string;
  outcome: "copied" | "skipped" | "failed" | "would_copy" | "pending"; round: number; immutable?: boolean;
  digest?: string; rewritten_from?: string; subject_digest?: string; referrers_dropped?: number; bytes: number;
  reason?: string; kind?: FailureKind;
}
/** The job's report: what `ferry sync --report` writes. */
export interface CopyReport { status: "succeeded" | "failed"; summary: Summary; images: ImageReport[] }
export interface CopyOptions {
  /** Tags to copy; default (or []): every source tag. */
  tags?: string[];
  /** "os/arch[/variant]" children of an index to copy; default: all. */
  platforms?: string[];
  /** Which referrers (signatures, SBOMs, attestations) travel: "all" (default), "none", or kinds, e.g. "sig,application/spdx+json". */
  referrers?: string;
  onProgress?: (event: ProgressEvent) => void;
  /** Aborting stops new work, aborts requests in flight and rejects with an AbortError. */
  signal?: AbortSignal;
}

/** Every tag of the repository (all pages of tags/list), sorted. */
export function listTags(repo: Repo): Promise<string[]>;
/** One image by tag or digest: media type, digest, platforms and total size. */
export function inspect(repo: Repo, reference: string): Promise<InspectResult>;
/** Compares two repositories, or two whole registries, tag by tag. */
export function diff(src: DiffSide, dst: DiffSide, opts?: DiffOptions): Promise<DiffReport>;
/** Copies tags (default: all) from src to dst; manifests keep their digests. */
export function copy(src: Repo, dst: Repo, opts?: CopyOptions): Promise<CopyReport>;
/** ferry's version. */
export function version(): string;
"#;

#[wasm_bindgen(js_name = listTags, skip_typescript)]
pub async fn list_tags(repo: JsValue) -> Result<JsValue, JsValue> {
    jobs::list_tags(repo).await.map_err(JsValue::from)
}

#[wasm_bindgen(skip_typescript)]
pub async fn inspect(repo: JsValue, reference: JsValue) -> Result<JsValue, JsValue> {
    let Some(reference) = reference.as_string() else {
        return Err(crate::errors::ApiError::input("reference must be a tag or a digest (a string)").into());
    };
    jobs::inspect(repo, reference).await.map_err(JsValue::from)
}

#[wasm_bindgen(skip_typescript)]
pub async fn diff(src: JsValue, dst: JsValue, opts: JsValue) -> Result<JsValue, JsValue> {
    jobs::diff(src, dst, opts).await.map_err(JsValue::from)
}

#[wasm_bindgen(skip_typescript)]
pub async fn copy(src: JsValue, dst: JsValue, opts: JsValue) -> Result<JsValue, JsValue> {
    jobs::copy(src, dst, opts, BrowserOptions::default()).await.map_err(JsValue::from)
}

#[wasm_bindgen(skip_typescript)]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
