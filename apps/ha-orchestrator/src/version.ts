/** The service's name and version, as reported by the API and the OpenAPI document. */
export const SERVICE_NAME = 'ha-orchestrator';
export const SERVICE_VERSION = '0.1.0';
