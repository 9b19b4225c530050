// The exec stream at the wire level, against a real engine: every subprotocol, the ready frame,
// the single Status frame and close 1000, half-closed stdin, resizes, 10 MB through cat, and
// client disconnects that must leave no process behind.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { closeStdin, collect, execPath, onMessage, openExec, runExec, sendResize, sendStdin } from '../helpers/exec-client.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';

let docker: TestDocker;
let agent: TestAgent;
const containers: TestContainer[] = [];

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker);
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'app') }));
});

after(async () => {
  for (const c of containers) await c.remove();
  await agent?.stop();
  await docker?.stop();
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const OUT_ERR_EXIT3 = { command: ['sh', '-c', 'echo out; echo err >&2; exit 3'], container: 'app', stdout: true, stderr: true };

describe('subprotocols', () => {
  for (const protocol of ['v5.channel.k8s.io', 'v4.channel.k8s.io']) {
    test(`${protocol}: ready frame, streams, one NonZeroExitCode Status frame, close 1000`, async () => {
      const r = await runExec(agent, 'default', 'web', OUT_ERR_EXIT3, { protocols: [protocol] });
      assert.equal(r.protocol, protocol);
      assert.deepEqual([...r.messages[0]!], [1], 'first message is the zero-length stdout frame');
      assert.equal(r.stdout.toString(), 'out\n');
      assert.equal(r.stderr.toString(), 'err\n');
      assert.equal(r.errorFrames, 1);
      assert.deepEqual(JSON.parse(r.error), {
        metadata: {},
        status: 'Failure',
        reason: 'NonZeroExitCode',
        message: 'command terminated with non-zero exit code: exit status 3',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      });
      assert.equal(r.closeCode, 1000);
    });
  }

  test('v4.base64.channel.k8s.io: text frames with base64 payloads and a base64 Status', async () => {
    const r = await runExec(agent, 'default', 'web', OUT_ERR_EXIT3, { protocols: ['v4.base64.channel.k8s.io'] });
    assert.equal(r.protocol, 'v4.base64.channel.k8s.io');
    assert.equal(r.messages[0]!.toString(), '1');
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(JSON.parse(r.error).reason, 'NonZeroExitCode');
    assert.equal(r.closeCode, 1000);
  });

  for (const protocol of ['channel.k8s.io', 'base64.channel.k8s.io']) {
    test(`${protocol}: plain-text error on failure, nothing on success`, async () => {
      const failed = await runExec(agent, 'default', 'web', OUT_ERR_EXIT3, { protocols: [protocol] });
      assert.equal(failed.protocol, protocol);
      assert.equal(failed.stdout.toString(), 'out\n');
      assert.equal(failed.error, 'command terminated with non-zero exit code: exit status 3');
      const ok = await runExec(agent, 'default', 'web', { command: ['true'], container: 'app', stdout: true }, { protocols: [protocol] });
      assert.equal(ok.errorFrames, 0);
      assert.equal(ok.closeCode, 1000);
    });
  }

  test("the client's order decides", async () => {
    const r = await runExec(agent, 'default', 'web', { command: ['true'], container: 'app', stdout: true }, { protocols: ['v4.channel.k8s.io', 'v5.channel.k8s.io'] });
    assert.equal(r.protocol, 'v4.channel.k8s.io');
    assert.deepEqual(JSON.parse(r.error), { metadata: {}, status: 'Success' });
  });

  test('kubelet-shaped route: input/output/error=1', async () => {
    const ws = await openExec(agent, '/exec/default/web/app?command=sh&command=-c&command=cat%3B+echo+done+%3E%262&input=1&output=1&error=1');
    const result = collect(ws);
    sendStdin(ws, 'kubelet\n');
    closeStdin(ws);
    const r = await result;
    assert.equal(r.stdout.toString(), 'kubelet\n');
    assert.equal(r.stderr.toString(), 'done\n');
    assert.equal(JSON.parse(r.error).status, 'Success');
  });
});

describe('streams', () => {
  test('stdin EOF (v5 close signal) half-closes: output written after EOF still arrives', async () => {
    const r = await runExec(agent, 'default', 'web', { command: ['sh', '-c', 'cat; echo after-eof'], container: 'app', stdin: true, stdout: true }, { stdin: 'line\n' });
    assert.equal(r.stdout.toString(), 'line\nafter-eof\n');
    assert.equal(JSON.parse(r.error).status, 'Success');
  });

  test('10 MB of random bytes through cat, no TTY, unchanged', async () => {
    const data = randomBytes(10 * 1024 * 1024);
    const r = await runExec(agent, 'default', 'web', { command: ['cat'], container: 'app', stdin: true, stdout: true, stderr: true }, { stdin: data });
    assert.equal(r.stdout.length, data.length);
    assert.equal(sha256(r.stdout), sha256(data));
    assert.equal(JSON.parse(r.error).status, 'Success');
  });

  test('10 MB of random bytes through cat on a TTY (raw mode), unchanged', async () => {
    const file = `/tmp/random-${randomBytes(4).toString('hex')}`;
    const made = await runExec(agent, 'default', 'web', {
      command: ['sh', '-c', `head -c 10485760 /dev/urandom > ${file} && sha256sum ${file}`],
      container: 'app',
      stdout: true,
    });
    const expected = made.stdout.toString().split(' ')[0]!;
    assert.match(expected, /^[0-9a-f]{64}$/);
    const r = await runExec(agent, 'default', 'web', { command: ['sh', '-c', `stty raw -echo; cat ${file}; rm ${file}`], container: 'app', stdout: true, tty: true });
    assert.equal(r.stdout.length, 10 * 1024 * 1024);
    assert.equal(sha256(r.stdout), expected);
    assert.equal(JSON.parse(r.error).status, 'Success');
  });

  test('TTY: the first size applies before input, later resizes reach the terminal', async () => {
    const ws = await openExec(agent, execPath('default', 'web', { command: 'sh', container: 'app', stdin: true, stdout: true, tty: true }));
    const result = collect(ws);
    let output = '';
    onMessage(ws, (data) => {
      if (data[0] === 1) output += data.subarray(1).toString('utf8');
    });
    sendResize(ws, 50, 20);
    sendStdin(ws, 'stty size\n');
    await waitUntil(() => output.includes('20 50'), 5000, 'the initial size in stty output');
    sendResize(ws, 70, 30);
    // The resize travels through the engine while stdin goes straight to the shell: ask until it shows.
    await waitUntil(() => {
      if (!output.includes('30 70')) sendStdin(ws, 'stty size\n');
      return output.includes('30 70');
    }, 5000, 'the new size in stty output');
    sendStdin(ws, 'exit 7\n');
    const r = await result;
    assert.equal(JSON.parse(r.error).details.causes[0].message, '7');
    assert.equal(r.closeCode, 1000);
  });
});

test('TTY: a resize message that is not valid is said on the terminal and logged; the session goes on', async () => {
  const ws = await openExec(agent, execPath('default', 'web', { command: 'sh', container: 'app', stdin: true, stdout: true, tty: true }));
  const result = collect(ws);
  let output = '';
  onMessage(ws, (data) => {
    if (data[0] === 1) output += data.subarray(1).toString('utf8');
  });
  ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('{"Width":-1,"Height":30}')]));
  await waitUntil(() => output.includes('[execlet] The terminal size the client sent is not valid (resize: Width must be an integer in 0-65535, got -1)'), 5000, 'the notice');
  sendStdin(ws, 'echo still-here\n');
  await waitUntil(() => output.includes('still-here\r\n'), 5000, 'the shell to go on');
  sendStdin(ws, 'exit 3\n');
  const r = await result;
  assert.equal(JSON.parse(r.error).details.causes[0].message, '3');
  assert.match(agent.output(), /"problem":"resize: Width must be an integer in 0-65535, got -1".*resize message that is not valid/);
});

test('pings are answered while a session runs', async () => {
  const ws = await openExec(agent, execPath('default', 'web', { command: ['sleep', '5'], container: 'app', stdout: true }));
  const pong = once(ws, 'pong');
  ws.ping(Buffer.from('are-you-there'));
  const [payload] = (await pong) as [Buffer];
  assert.equal(payload.toString(), 'are-you-there');
  ws.terminate();
});

describe('disconnects leave no process behind', () => {
  const cases = [
    { name: 'dropped connection, no TTY', marker: 'sleep 1234001', tty: false, abrupt: true },
    { name: 'dropped connection, TTY, shell with a child', marker: 'sleep 1234002', tty: true, abrupt: true },
    { name: 'close frame, no TTY, shell with a child', marker: 'sleep 1234003', tty: false, abrupt: false },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const params: Record<string, string | string[] | boolean> = c.tty
        ? { command: ['sh', '-c', `${c.marker}; echo unreachable`], container: 'app', stdin: true, stdout: true, tty: true }
        : { command: ['sh', '-c', `${c.marker}; echo unreachable`], container: 'app', stdout: true, stderr: true };
      const ws = await openExec(agent, execPath('default', 'web', params));
      if (c.tty) sendResize(ws, 80, 24);
      await waitUntil(() => pidsWithCommandLine(c.marker).length === 1, 5000, `${c.marker} to start`);
      const closed = once(ws, 'close');
      if (c.abrupt) ws.terminate();
      else ws.close(1000);
      await closed;
      // The command and its parent shell: signalled together, each gone when the scheduler runs it.
      const shell = 'sh -c ' + c.marker + '; echo unreachable';
      const gone = () => pidsWithCommandLine(c.marker).length === 0 && pidsWithCommandLine(shell).length === 0;
      // SIGHUP ends them at once, SIGKILL a second later (the kill grace): the rest is a loaded machine's slack.
      await waitUntil(gone, 5000, `${c.marker} and its parent shell to be gone`).catch((err: Error) => {
        // Say what the agent saw, so a failure here can be explained.
        throw new Error(`${err.message}\nagent log tail:\n${agent.output().split('\n').slice(-12).join('\n')}`);
      });
    });
  }
});
