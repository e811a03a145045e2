// The `@xapi/xapi` npm library as an LMS uses it: single, batch, without ids, with a
// voiding statement, each read back through the library.
import XAPI from "@xapi/xapi";
import { readFileSync, writeFileSync } from "node:fs";

const env = JSON.parse(readFileSync(process.argv[2], "utf8"));
const xapi = new XAPI({ endpoint: env.endpoint, auth: XAPI.toBasicAuth(env.key, env.secret), version: "1.0.3" });
const completed = () => ({
  actor: { objectType: "Agent", mbox: env.learner },
  verb: { id: "http://adlnet.gov/expapi/verbs/completed", display: { "en-US": "completed" } },
  object: { objectType: "Activity", id: env.course },
});
const one = (await xapi.sendStatement({ statement: completed() })).data;
const batch = (await xapi.sendStatements({ statements: [completed(), completed()] })).data;
const ids = [...one, ...batch];
if (ids.length !== 3) throw new Error(`expected 3 ids, got ${JSON.stringify(ids)}`);
for (const statementId of ids) {
  const got = (await xapi.getStatement({ statementId })).data;
  if (got.id !== statementId) throw new Error(`read back ${got.id} for ${statementId}`);
}
await xapi.voidStatement({ actor: { objectType: "Agent", mbox: "mailto:moodle@example.org" }, statementId: ids[0] });
const voided = (await xapi.getVoidedStatement({ voidedStatementId: ids[0] })).data;
if (voided.id !== ids[0]) throw new Error("the voided statement is not returned as voided");
let stillThere = true;
try { await xapi.getStatement({ statementId: ids[0] }); } catch { stillThere = false; }
if (stillThere) throw new Error("a voided statement is still returned");
console.log(`@xapi/xapi: ${ids.length} statements stored and read back, one voided`);
writeFileSync(process.argv[3], JSON.stringify({ ids, voided: ids[0] }));
