// The API description as checked in at openapi.json, built from the real routes with an updater
// that is never called (building the document runs no handler).
import { UpgradeError } from '@upgrade/core';
import { formatOpenApi, generateOpenApi } from '@upgrade/service';
import { buildApp } from './app.js';
import type { Updater } from './updater.js';

const unused = (): never => {
  throw new UpgradeError('INTERNAL', 'not available while generating the API description');
};

/** openapi.json's exact text. */
export async function renderOpenApi(): Promise<string> {
  const updater: Updater = {
    startDownload: unused,
    startUpdate: unused,
    cancel: unused,
    progress: unused,
    state: unused,
    versions: unused,
    recover: unused,
    close: unused,
    reportStats: { offered: 0, sent: 0, failed: 0 },
  };
  const app = await buildApp({ updater, logger: false });
  try {
    return formatOpenApi(await generateOpenApi(app));
  } finally {
    await app.close();
  }
}
