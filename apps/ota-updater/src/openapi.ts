// The API description as checked in at openapi.json (served by the running service at /docs/json
// from that file), built from the described routes on the service kit. Development only: the
// service's bundle never imports this.
import { createService, formatOpenApi, generateOpenApi } from '@upgrade/service';
import { describeOtaApi } from './http/api-description.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';

/** openapi.json's exact text. */
export async function renderOpenApi(): Promise<string> {
  const app = await createService({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    logger: false,
    openapi: {
      title: 'ota-updater',
      description:
        'Device-side OTA updates: verified streaming download, version snapshots behind an atomic symlink, systemd restart with health checks, rollback to previous then factory.',
    },
  });
  try {
    await app.register(describeOtaApi);
    return formatOpenApi(await generateOpenApi(app));
  } finally {
    await app.close();
  }
}
