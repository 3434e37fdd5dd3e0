// Where each vLLM release logged each start-up line: the call site ("worker.py:266") its logger header
// carries, from the release that moved it on. Attested in the cases of test/fixtures/vllm-startup-reports
// where they printed one (listed below), otherwise illustrative. Pure.
import { releaseAtLeast as atLeast, type SimRelease } from './sim-release.js';

export interface Sites {
  platform: string;
  api: string;
  args: string;
  engine: string;
  loadStart: string;
  weightsRead: string;
  loaded: string;
  profile: string;
  available: string;
  blocks: string;
  concurrency: string;
  kvSize: string;
  kvConcurrency: string;
  graphs: string;
  init: string;
}

// From each release on (the first row fills every site). Attested in the cases: 0.5.0.post1 api_server.py:206,
// 0.5.3 model_runner.py:692, 0.5dev gpu_executor.py:83, 0.6.5 worker.py:241 / model_runner.py:1097 /
// llm_engine.py:249, 0.7.1 worker.py:266 / executor_base.py:108 / model_runner.py:1116, 0.7.3dev worker.py:267 /
// executor_base.py:111/116 / model_runner.py:1115, 0.8.2 gpu_model_runner.py:1186 / loader.py:447, 0.10.1
// gpu_model_runner.py:2007 / gpu_worker.py:276, 0.10.2 gpu_worker.py:298 / kv_cache_utils.py:864/868, 0.14.1
// gpu_model_runner.py:3905, 0.19.0 kv_cache_utils.py:1319/1324, 0.24.0 gpu_worker.py:508 / kv_cache_utils.py:2146/2147.
const SITES: [minor: number, patch: number, sites: Partial<Sites>][] = [
  [
    5,
    0,
    {
      platform: '__init__.py:183',
      api: 'api_server.py:206',
      args: 'api_server.py:207',
      engine: 'llm_engine.py:169',
      loadStart: 'model_runner.py:680',
      weightsRead: 'loader.py:447',
      loaded: 'model_runner.py:692',
      profile: 'worker.py:233',
      available: 'gpu_worker.py:276',
      blocks: 'gpu_executor.py:83',
      concurrency: 'gpu_executor.py:126',
      kvSize: 'kv_cache_utils.py:566',
      kvConcurrency: 'kv_cache_utils.py:569',
      graphs: 'model_runner.py:1083',
      init: 'llm_engine.py:431',
    },
  ],
  [
    6,
    0,
    {
      api: 'api_server.py:528',
      args: 'api_server.py:529',
      engine: 'llm_engine.py:226',
      loadStart: 'model_runner.py:1014',
    },
  ],
  [6, 3, { loaded: 'model_runner.py:1067', blocks: 'gpu_executor.py:122', graphs: 'model_runner.py:1519' }],
  [6, 5, { engine: 'llm_engine.py:249', loaded: 'model_runner.py:1097', profile: 'worker.py:241' }],
  [6, 6, { engine: 'llm_engine.py:234' }],
  [
    7,
    0,
    {
      api: 'api_server.py:840',
      args: 'api_server.py:841',
      engine: 'llm_engine.py:232',
      loaded: 'model_runner.py:1115',
      profile: 'worker.py:266',
      blocks: 'executor_base.py:108',
      concurrency: 'executor_base.py:113',
    },
  ],
  [7, 1, { loaded: 'model_runner.py:1116' }],
  [7, 2, { engine: 'llm_engine.py:234', loaded: 'model_runner.py:1115' }],
  [7, 3, { profile: 'worker.py:267', blocks: 'executor_base.py:111', concurrency: 'executor_base.py:116' }],
  [
    8,
    0,
    {
      platform: '__init__.py:256',
      api: 'api_server.py:1004',
      args: 'api_server.py:1005',
      engine: 'core.py:54',
      loadStart: 'gpu_model_runner.py:1140',
      loaded: 'gpu_model_runner.py:1186',
      graphs: 'gpu_model_runner.py:1608',
      init: 'core.py:162',
    },
  ],
  [9, 0, { weightsRead: 'default_loader.py:262' }],
  [
    10,
    0,
    {
      platform: '__init__.py:241',
      api: 'api_server.py:1805',
      args: 'utils.py:326',
      engine: 'core.py:74',
      loadStart: 'gpu_model_runner.py:1953',
      loaded: 'gpu_model_runner.py:2007',
      kvSize: 'kv_cache_utils.py:849',
      kvConcurrency: 'kv_cache_utils.py:853',
      graphs: 'gpu_model_runner.py:2708',
      init: 'core.py:214',
    },
  ],
  [
    10,
    2,
    {
      available: 'gpu_worker.py:298',
      kvSize: 'kv_cache_utils.py:864',
      kvConcurrency: 'kv_cache_utils.py:868',
    },
  ],
  [
    11,
    1,
    {
      available: 'gpu_worker.py:348',
      kvSize: 'kv_cache_utils.py:1234',
      kvConcurrency: 'kv_cache_utils.py:1239',
    },
  ],
  [14, 0, { loaded: 'gpu_model_runner.py:3905' }],
  [
    19,
    0,
    {
      loaded: 'gpu_model_runner.py:4820',
      kvSize: 'kv_cache_utils.py:1319',
      kvConcurrency: 'kv_cache_utils.py:1324',
    },
  ],
  [
    24,
    0,
    {
      available: 'gpu_worker.py:508',
      kvSize: 'kv_cache_utils.py:2146',
      kvConcurrency: 'kv_cache_utils.py:2147',
    },
  ],
  [27, 0, { kvSize: 'kv_cache_utils.py:1148' }],
];

export function sitesOf(r: SimRelease): Sites {
  let sites = {} as Sites;
  for (const [minor, patch, s] of SITES) if (atLeast(r, minor, patch)) sites = { ...sites, ...s };
  return sites;
}
