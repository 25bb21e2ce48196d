// What to tell a person about a failure, chosen from the core's kind of failure
// (`ErrorKind` in ferry-core: every failed image, listing and diff error carries one).
// The registry's own words follow, so nothing it said is lost.

/** The page's wording for each kind; `kind` values are ferry-core's `ErrorKind`. */
export const FAILURE_ADVICE = {
  not_found: 'Not found: the repository, tag or manifest does not exist on that registry.',
  unauthorized: 'Access refused: check the user name and password (or token) given for that registry, and that they may read (or push to) this repository.',
  rate_limited: 'The registry is rate-limiting: wait a while, then copy again.',
  unavailable: 'The registry could not be reached or kept failing: try again later.',
  integrity: 'The bytes do not match their digest: the source serves damaged or altered content, so nothing was pushed for this image.',
  invalid_answer: 'The registry sent an answer ferry cannot read.',
  unsupported: 'This image is of a kind ferry does not copy.',
  invalid_name: 'A repository or tag name is not valid.',
  refused: 'The registry refused the request.',
  cancelled: 'Cancelled.',
  tls: "The registry's TLS certificate is not trusted here: the browser decides, so open the registry's URL in a tab to see why.",
};

/** One line: the advice for `kind` (when known), then the detail. */
export function describeFailure(kind, detail) {
  const advice = FAILURE_ADVICE[kind];
  if (!advice) return detail ?? '';
  return detail ? `${advice} (${detail})` : advice;
}
