// Prints an entry of the edge relay's RELAY_USERS for a user: `user:pbkdf2-sha256$iterations$salt$hash`.
// The password is read from stdin (one line), so it stays out of the shell's history and the process list.
//
//   node wasm-demo/hash-password.mjs alice            (type the password, then Enter)
//   printf '%s\n' "$PASSWORD" | node wasm-demo/hash-password.mjs alice [iterations]

import { ITERATIONS, hashPassword } from './users.mjs';

const [user, iterations = String(ITERATIONS)] = process.argv.slice(2);
if (!user || !/^\d+$/.test(iterations) || Number(iterations) > ITERATIONS) {
  console.error(`usage: node wasm-demo/hash-password.mjs <user> [iterations, at most ${ITERATIONS}] < password`);
  process.exit(2);
}
if (process.stdin.isTTY) process.stderr.write(`password for ${user}: `);
let input = '';
for await (const chunk of process.stdin) {
  input += chunk;
  if (input.includes('\n')) break;
}
const line = input.split(/\r?\n/)[0];
if (!line) {
  console.error('hash-password: no password on stdin');
  process.exit(2);
}
console.log(await hashPassword(user, line, Number(iterations)));
