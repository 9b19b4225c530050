// Keeps the README's configuration table and `execlet serve --help` in step with the settings schema.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { serveHelp, targetsHelp } from '../../src/cli/help.js';
import { SETTINGS, settingsSchema } from '../../src/config/settings.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

test('every setting is in the README table with its flag, environment variable and key', () => {
  for (const setting of SETTINGS) {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${setting.flag}\` |`));
    assert.ok(row, `README has no row for ${setting.flag}`);
    assert.ok(row.includes(`\`${setting.env}\``), `README row of ${setting.flag} lacks ${setting.env}`);
    assert.ok(row.includes(`\`${setting.path}\``), `README row of ${setting.flag} lacks ${setting.path}`);
  }
});

test('every setting is in --help', () => {
  const help = serveHelp();
  for (const setting of SETTINGS) {
    assert.ok(help.includes(setting.flag), `--help lacks ${setting.flag}`);
    assert.ok(help.includes(setting.env), `--help lacks ${setting.env}`);
  }
});

test("targets --help's jq example keeps jq's string interpolation", () => {
  // In the help's template literal, a lone backslash before "(" is dropped: jq then prints the text.
  assert.ok(targetsHelp().includes(String.raw`"\(.namespace)/\(.pod)"`), targetsHelp());
});

test('the settings table covers every leaf of the schema', () => {
  const leaves: string[] = [];
  const walk = (shape: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(shape)) {
      const inner = (value as { shape?: Record<string, unknown> }).shape;
      if (inner) walk(inner, `${prefix}${key}.`);
      else leaves.push(`${prefix}${key}`);
    }
  };
  walk(settingsSchema.shape, '');
  assert.deepEqual(leaves.sort(), SETTINGS.map((s) => s.path).sort());
});

test('the README policy and config examples load', async () => {
  const { Policy } = await import('../../src/auth/policy.js');
  const { parse } = await import('yaml');
  const { settingsSchema, defaultSettings } = await import('../../src/config/settings.js');
  const block = (marker: string) => {
    const start = readme.indexOf(marker);
    assert.ok(start >= 0, `README has the ${marker} example`);
    return readme.slice(start, readme.indexOf('```', start));
  };
  const policy = Policy.parse(block('# /etc/execlet/policy.yaml'), 'README');
  assert.equal(policy.ruleCount, 4);
  const config = parse(block('# /etc/execlet/config.yaml')) as Record<string, unknown>;
  const defaults = defaultSettings() as unknown as Record<string, unknown>;
  const merged = { ...defaults, ...config, tls: config.tls, audit: { ...(defaults.audit as object), ...(config.audit as object) } };
  assert.equal(settingsSchema.safeParse(merged).success, true, JSON.stringify(settingsSchema.safeParse(merged).error?.issues));
});
