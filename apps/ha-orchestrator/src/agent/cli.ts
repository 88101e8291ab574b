#!/usr/bin/env node
// The node agent (`ha-node-agent`): run by the orchestrator over SSH, one JSON AgentRequest on stdin,
// one AgentResponse line on stdout. Exit code 0 for an ok answer, 1 for an error answer, 2 when
// the agent's own config is missing or invalid (answered with CONFIG_INVALID).
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import { configPathFrom, loadAgentConfig, type AgentConfig } from './config.js';
import { handleRequest } from './handle-request.js';
import type { AgentResponse } from './protocol.js';

/** A request is small (names and numbers); anything larger is refused before parsing. */
const MAX_REQUEST_BYTES = 1024 * 1024;

/**
 * Reads up to the first newline (or EOF). stdin is only paused, never destroyed: under sshd it may be
 * the same socket as stdout, and closing it would take the answer's way out with it.
 */
function readRequest(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stdin = process.stdin;
    const finish = (error: UpgradeError | null): void => {
      stdin.off('data', onData).off('end', onEnd).off('error', onError);
      stdin.pause();
      if (error !== null) reject(error);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (chunk: Buffer): void => {
      const newline = chunk.indexOf(0x0a);
      chunks.push(newline === -1 ? chunk : chunk.subarray(0, newline));
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES)
        finish(new UpgradeError('VALIDATION_FAILED', `request larger than ${MAX_REQUEST_BYTES} bytes`));
      // One line is one request: answer at the newline even if the caller keeps stdin open.
      else if (newline !== -1) finish(null);
    };
    const onEnd = (): void => finish(null);
    const onError = (): void => finish(new UpgradeError('VALIDATION_FAILED', 'request could not be read'));
    stdin.on('data', onData).once('end', onEnd).once('error', onError);
  });
}

function write(response: AgentResponse, exitCode: number): void {
  process.stdout.write(`${JSON.stringify(response)}\n`, () => process.exit(exitCode));
}

function failure(error: UpgradeError, durationMs: number): AgentResponse {
  return {
    ok: false,
    requestId: '',
    op: null,
    error: { code: error.code, message: error.message, retryable: error.retryable },
    durationMs,
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  // The caller gone (channel closed before the answer): nothing to answer to; exit non-zero
  // instead of dying on an unhandled EPIPE.
  process.stdout.on('error', () => process.exit(1));
  let config: AgentConfig;
  try {
    config = await loadAgentConfig(configPathFrom(process.argv.slice(2), process.env));
  } catch (error) {
    const problem = isUpgradeError(error)
      ? error
      : new UpgradeError('CONFIG_INVALID', 'agent config could not be loaded');
    console.error(`ha-node-agent: ${problem.message}`);
    write(failure(problem, Date.now() - started), 2);
    return;
  }
  let input: string;
  try {
    input = await readRequest();
  } catch (error) {
    const problem = isUpgradeError(error)
      ? error
      : new UpgradeError('VALIDATION_FAILED', 'request could not be read');
    write(failure(problem, Date.now() - started), 1);
    return;
  }
  const response = await handleRequest(input, config, {
    env: process.env,
    log: (entry) =>
      console.error(JSON.stringify({ agent: config.nodeId, at: new Date().toISOString(), ...entry })),
  });
  write(response, response.ok ? 0 : 1);
}

await main();
