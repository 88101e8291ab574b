// The configuration as an operator writes it: what is refused at start, naming the entry.
import { describe, expect, it } from 'vitest';
import { isUpgradeError } from '@upgrade/core';
import { ConfigError } from '@upgrade/service';
import { loadRcuConfig } from '../src/config.js';

const BASE = {
  VENDOR_BASE_URL: 'http://127.0.0.1:9/api',
  VENDOR_USERNAME: 'rcu',
  VENDOR_PASSWORD: 'secret',
  RCU_GROUPS: '[{"roomTypeId":12,"hosts":["h1","h2"]},{"roomTypeId":15,"hosts":["h3"]}]',
  FIRMWARE_FILES: '[{"filename":"RCU_V2.3.1.bin","fileType":1},{"filename":"RCU_V2.4.0.bin","fileType":1}]',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadRcuConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.variable}: ${i.message}`);
    throw error;
  }
  return [];
}

describe('loadRcuConfig', () => {
  it('accepts a sound configuration', () => {
    const config = loadRcuConfig(BASE);
    expect(config.RCU_GROUPS).toHaveLength(2);
    expect(config.DATABASE_CREATE).toBe(false);
  });

  it('requires VENDOR_BASE_URL: blank or unset never means production', () => {
    expect(problems({ ...BASE, VENDOR_BASE_URL: '' })).toEqual(['VENDOR_BASE_URL: is required but not set']);
    const { VENDOR_BASE_URL: _, ...unset } = BASE;
    expect(problems(unset)).toEqual(['VENDOR_BASE_URL: is required but not set']);
  });

  it('refuses a host listed twice in one group, naming it', () => {
    expect(problems({ ...BASE, RCU_GROUPS: '[{"roomTypeId":12,"hosts":["h1","h2","h1"]}]' })).toEqual([
      'RCU_GROUPS: roomTypeId 12 lists host h1 twice; list each host once',
    ]);
  });

  it('refuses a host in two room types: it would get two firmware pushes a round', () => {
    expect(
      problems({
        ...BASE,
        RCU_GROUPS: '[{"roomTypeId":12,"hosts":["h1","h2"]},{"roomTypeId":15,"hosts":["h2","h3"]}]',
      }),
    ).toEqual([
      'RCU_GROUPS: host h2 is in roomTypeId 12 and roomTypeId 15; a host belongs to one room type (it would be upgraded twice a round)',
    ]);
  });

  it('refuses firmware file names that are not plain names, naming each', () => {
    const files = JSON.stringify([
      { filename: 'fw/RCU_V2.3.1.bin', fileType: 1 },
      { filename: 'C:\\fw\\RCU_V2.4.0.bin', fileType: 1 },
      { filename: '..', fileType: 1 },
      { filename: ' RCU.bin', fileType: 1 },
      { filename: 'RCU_V2.5.0.bin', fileType: 1 },
    ]);
    const found = problems({ ...BASE, FIRMWARE_FILES: files });
    expect(found).toHaveLength(4);
    expect(found[0]).toMatch(/^FIRMWARE_FILES: filename "fw\/RCU_V2\.3\.1\.bin" is not a plain file name/);
    expect(found.join('\n')).not.toContain('RCU_V2.5.0.bin');
  });

  it('names every problem at once', () => {
    const found = problems({
      ...BASE,
      VENDOR_BASE_URL: '',
      RCU_GROUPS: '[{"roomTypeId":12,"hosts":["h1","h1"]}]',
    });
    // Schema problems come first; the cross-entry checks need a config that parsed.
    expect(found).toEqual(['VENDOR_BASE_URL: is required but not set']);
    let error: unknown;
    try {
      loadRcuConfig({
        ...BASE,
        RCU_GROUPS: '[{"roomTypeId":12,"hosts":["h1","h1"]}]',
        FIRMWARE_FILES: '[{"filename":"a/b","fileType":1},{"filename":"c","fileType":1}]',
      });
    } catch (e) {
      error = e;
    }
    expect(isUpgradeError(error, 'CONFIG_INVALID')).toBe(true);
    expect((error as ConfigError).issues.map((i) => i.variable)).toEqual(['RCU_GROUPS', 'FIRMWARE_FILES']);
  });
});
