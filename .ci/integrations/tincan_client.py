"""The `tincan` library (TinCanPython) as an LMS uses it: single, batch, without ids,
with an id (PUT) and a voiding statement, each read back through the library; then a
query by agent, verb and activity read page by page (`more`), and one by registration."""
import json, sys, uuid
from tincan import RemoteLRS, Statement, Agent, Verb, Activity, StatementRef, Context

env = json.load(open(sys.argv[1]))
lrs = RemoteLRS(endpoint=env["endpoint"], version="1.0.3", username=env["key"], password=env["secret"])


def check(resp, what):
    if not resp.success:
        sys.exit(f"tincan: {what} failed: {resp.response.status} {resp.data}")
    return resp


about = check(lrs.about(), "about")
assert "1.0.3" in about.content.version, about.content.version


def completed(activity=env["course"]):
    return Statement(actor=Agent(mbox=env["learner"]), verb=Verb(id="http://adlnet.gov/expapi/verbs/completed"),
                     object=Activity(id=activity))


single = check(lrs.save_statement(completed()), "a statement without an id").content
assert single.id, "no id assigned"
chosen = completed()
chosen.id = str(uuid.uuid4())
check(lrs.save_statement(chosen), "a statement with an id (PUT)")
batch = check(lrs.save_statements([completed(), completed()]), "a batch").content
ids = [single.id, chosen.id] + [s.id for s in batch]
for i in ids:
    got = check(lrs.retrieve_statement(str(i)), f"reading {i} back").content
    assert str(got.id) == str(i) and got.verb.id.endswith("/completed"), got.to_json()
void = Statement(actor=Agent(mbox="mailto:moodle@example.org"), verb=Verb(id="http://adlnet.gov/expapi/verbs/voided"),
                 object=StatementRef(id=chosen.id))
check(lrs.save_statement(void), "a voiding statement")
voided = check(lrs.retrieve_voided_statement(str(chosen.id)), "reading the voided statement").content
assert str(voided.id) == str(chosen.id)
assert not lrs.retrieve_statement(str(chosen.id)).success, "a voided statement is still returned"

# A query, two statements a page, followed through `more` to the end.
query = {"agent": Agent(mbox=env["learner"]), "verb": Verb(id="http://adlnet.gov/expapi/verbs/completed"),
         "activity": Activity(id=env["course"]), "limit": 2}
page = check(lrs.query_statements(query), "a query").content
seen, pages = [], 0
while True:
    pages += 1
    assert len(page.statements) <= 2, len(page.statements)
    seen += [str(s.id) for s in page.statements]
    if not page.more:
        break
    page = check(lrs.more_statements(page), f"page {pages + 1} (more: {page.more})").content
assert len(seen) == len(set(seen)), f"a statement on two pages: {seen}"
expected = {str(i) for i in ids} - {str(chosen.id)}
assert expected <= set(seen) and str(chosen.id) not in seen, (seen, expected)
assert pages >= 2, f"{len(seen)} statements on {pages} page(s)"
other = check(lrs.query_statements({"agent": Agent(mbox="mailto:nobody@example.org")}), "another agent").content
assert not other.statements, other.to_json()
registration = uuid.uuid4()
registered = completed()
registered.context = Context(registration=registration)
registered_id = check(lrs.save_statement(registered), "a statement of a registration").content.id
found = check(lrs.query_statements({"registration": str(registration)}), "by registration").content
assert [str(s.id) for s in found.statements] == [str(registered_id)], found.to_json()
ids.append(registered_id)
print(f"tincan: {len(ids)} statements stored and read back, one voided; "
      f"a query read in {pages} pages through more; one found by registration")
json.dump({"ids": [str(i) for i in ids], "voided": str(chosen.id)}, open(sys.argv[2], "w"))
