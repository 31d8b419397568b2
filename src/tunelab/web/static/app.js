/* tunelab dashboard: a static single-page app over the public REST API, as ES modules with no
 * build step (js/: dom, format, api, stream, chart, router, and one module per page).
 *
 * Rules that keep it safe and honest:
 * - every value from the server reaches the page as text (el() / textContent), never as markup;
 * - every action is one documented API call, so the dashboard can do nothing the API cannot;
 * - every list the server owns (statuses, moves, formats, file types, methods, field groups)
 *   is read from GET /api/meta, never copied here;
 * - an API error is shown with its message and its hint, as the CLI prints them.
 */

import { setupTokenDialog } from "./js/api.js";
import { pageAlerts } from "./js/pages/alerts.js";
import { pageAnalytics } from "./js/pages/analytics.js";
import { pageChat } from "./js/pages/chat.js";
import { pageCompare } from "./js/pages/compare.js";
import { pageDataset } from "./js/pages/dataset.js";
import { pageDatasets } from "./js/pages/datasets.js";
import { pageEvaluation, pageEvaluations } from "./js/pages/evaluations.js";
import { pageExperiment, pageExperiments } from "./js/pages/experiments.js";
import { pageJob } from "./js/pages/job.js";
import { pageJobs } from "./js/pages/jobs.js";
import { pageModel } from "./js/pages/model.js";
import { pageModels } from "./js/pages/models.js";
import { pageNew } from "./js/pages/new.js";
import { pageAdvisor } from "./js/pages/advisor.js";
import { pageSystem } from "./js/pages/system.js";
import { pageSweep, pageSweepNew, pageSweeps } from "./js/pages/sweeps.js";
import { startRouter } from "./js/router.js";

setupTokenDialog();
startRouter([
  [/^#\/jobs\/([^/?]+)$/, "jobs", pageJob],
  [/^#\/jobs$/, "jobs", pageJobs],
  [/^#\/compare(?:\?(.*))?$/, "jobs", pageCompare],
  [/^#\/new(?:\?(.*))?$/, "new", pageNew],
  [/^#\/advisor$/, "advisor", pageAdvisor],
  [/^#\/datasets\/([^/?]+)$/, "datasets", pageDataset],
  [/^#\/datasets$/, "datasets", pageDatasets],
  [/^#\/models\/(.+)$/, "models", pageModel],
  [/^#\/models$/, "models", pageModels],
  [/^#\/system$/, "system", pageSystem],
  [/^#\/alerts$/, "alerts", pageAlerts],
  [/^#\/analytics$/, "analytics", pageAnalytics],
  [/^#\/evaluations\/([^/?]+)$/, "evaluations", pageEvaluation],
  [/^#\/evaluations(?:\?(.*))?$/, "evaluations", pageEvaluations],
  [/^#\/experiments\/([^/?]+)$/, "experiments", pageExperiment],
  [/^#\/experiments$/, "experiments", pageExperiments],
  [/^#\/chat(?:\?(.*))?$/, "chat", pageChat],
  [/^#\/sweeps\/new(?:\?(.*))?$/, "sweeps", pageSweepNew],
  [/^#\/sweeps\/([^/?]+)$/, "sweeps", pageSweep],
  [/^#\/sweeps$/, "sweeps", pageSweeps],
]);
