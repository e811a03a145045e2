// The `@xapi/xapi` npm library as an LMS uses it: single, batch, without ids, with a
// voiding statement, each read back through the library; then a query by agent, verb
// and activity read page by page (`more`), and one by registration.
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

// A query, two statements a page, followed through `more` to the end.
let page = (await xapi.getStatements({
  agent: { objectType: "Agent", mbox: env.learner }, verb: "http://adlnet.gov/expapi/verbs/completed",
  activity: env.course, limit: 2,
})).data;
const seen = [];
let pages = 1;
for (;;) {
  if (page.statements.length > 2) throw new Error(`${page.statements.length} statements on a page of 2`);
  seen.push(...page.statements.map((s) => s.id));
  if (!page.more) break;
  page = (await xapi.getMoreStatements({ more: page.more })).data;
  pages += 1;
}
if (new Set(seen).size !== seen.length) throw new Error(`a statement on two pages: ${seen}`);
for (const id of ids.slice(1)) if (!seen.includes(id)) throw new Error(`${id} not found by the query: ${seen}`);
if (seen.includes(ids[0])) throw new Error("the voided statement is found by the query");
if (pages < 2) throw new Error(`${seen.length} statements on ${pages} page(s)`);
const registration = crypto.randomUUID();
const [registered] = (await xapi.sendStatement({ statement: { ...completed(), context: { registration } } })).data;
const found = (await xapi.getStatements({ registration })).data.statements.map((s) => s.id);
if (JSON.stringify(found) !== JSON.stringify([registered])) throw new Error(`by registration: ${found}`);
ids.push(registered);
console.log(`@xapi/xapi: ${ids.length} statements stored and read back, one voided; a query read in ${pages} pages through more; one found by registration`);
writeFileSync(process.argv[3], JSON.stringify({ ids, voided: ids[0] }));
