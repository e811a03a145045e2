// A phone app's calls, written against the types openapi-typescript generates from the
// committed OpenAPI document and sent through openapi-fetch. Compiled by tsc under
// `strict` in CI (.ci/clients.sh): a renamed field, a dropped operation or a body that
// no longer matches the document fails the build. Nothing here is `any`.
import createClient from "openapi-fetch";
import type { paths, components } from "./schema";

type Activity = components["schemas"]["Activity"];
type Progress = components["schemas"]["Progress"];

export async function phone(
  baseUrl: string,
  email: string,
  password: string,
  totpCode: string,
  enrolmentId: string,
  assessorId: string,
  pdf: Uint8Array,
): Promise<{ activity: Activity; progress: Progress; changes: number }> {
  const api = createClient<paths>({ baseUrl });

  // Password, then the second factor: `status` tells the shapes of the answer apart.
  const step = await api.POST("/api/v1/auth/login", { body: { email, password } });
  if (!step.data || step.data.status !== "mfa_required") {
    throw new Error(`login: ${step.response.status}`);
  }
  const mfaToken: string = step.data.mfa_token;
  const done = await api.POST("/api/v1/auth/mfa/verify", {
    body: { mfa_token: mfaToken, method: "totp", code: totpCode },
  });
  if (!done.data || done.data.status !== "authenticated") {
    throw new Error(`verify: ${done.response.status}`);
  }
  const token: string = done.data.access_token;
  const auth = { Authorization: `Bearer ${token}` };

  // Log an activity, safe to retry offline.
  const created = await api.POST("/api/v1/enrolments/{id}/activities", {
    params: { path: { id: enrolmentId }, header: { "Idempotency-Key": crypto.randomUUID() } },
    headers: auth,
    body: {
      kind: "course",
      title: "Försäkringsmedicinsk dag",
      start_date: "2026-10-06",
      delmal: ["BT16"],
    },
  });
  if (!created.data) {
    throw new Error(`activity: ${created.response.status}`);
  }
  const activity: Activity = created.data;

  // Its course certificate, as the file itself.
  const uploaded = await api.POST("/api/v1/activities/{id}/attachments", {
    params: { path: { id: activity.id }, query: { filename: "kursintyg.pdf" } },
    headers: { ...auth, "Content-Type": "application/pdf" },
    body: pdf as unknown as string,
    bodySerializer: (b: unknown) => b as BodyInit,
  });
  if (!uploaded.data) {
    throw new Error(`attachment: ${uploaded.response.status}`);
  }
  const sha256: string = uploaded.data.sha256;

  // Ask a supervisor to assess.
  const asked = await api.POST("/api/v1/enrolments/{id}/assessments", {
    params: { path: { id: enrolmentId } },
    headers: auth,
    body: { instrument: "dops", performed_on: "2026-10-07", assessor_id: assessorId, delmal: ["BT1"] },
  });
  if (!asked.data) {
    throw new Error(`assessment: ${asked.response.status}`);
  }

  // Progress, and what changed since the phone last synced.
  const progress = await api.GET("/api/v1/enrolments/{id}/progress", {
    params: { path: { id: enrolmentId } },
    headers: auth,
  });
  const changes = await api.GET("/api/v1/enrolments/{id}/changes", {
    params: { path: { id: enrolmentId }, query: { limit: 100 } },
    headers: auth,
  });
  if (!progress.data || !changes.data) {
    throw new Error("progress or changes");
  }
  console.log(sha256);
  return { activity, progress: progress.data, changes: changes.data.items.length };
}
