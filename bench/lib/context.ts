// What every scenario gets: the engine, a running agent, containers, and how long to run.
import type Dockerode from 'dockerode';
import type { TestAgent } from '../../test/helpers/agent.js';
import type { TestContainer } from '../../test/helpers/containers.js';
import type { TestDocker } from '../../test/helpers/docker-daemon.js';
import type { ProcessTimer } from './clients.js';

export interface BenchContext {
  docker: TestDocker;
  dockerode: Dockerode;
  agent: TestAgent;
  /** A pod-labelled busybox container, `default/bench/app`. */
  app: TestContainer;
  /** The docker CLI and the environment that points it at the bench engine. */
  dockerCli: string;
  dockerEnv: NodeJS.ProcessEnv;
  quick: boolean;
  /** Times a program run (output discarded) from a small launcher, not from the bench's own process. */
  timeProcess: ProcessTimer;
  /** Starts another agent (start-up, concurrency), optionally on an existing state dir or with extra environment; stopped by the caller. */
  startAgent(args?: string[], stateDir?: string, env?: NodeJS.ProcessEnv): Promise<TestAgent>;
  startContainer(name: string): Promise<TestContainer>;
}

export interface Goal {
  text: string;
  met: boolean;
  detail: string;
}

export interface ChartSeries {
  label: string;
  /** Latency samples (ms) for distribution charts, or one value for bar charts. */
  values: number[];
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** Figures, each next to its baseline where there is one. */
  figures: Record<string, number | string>;
  goals: Goal[];
  chart: { kind: 'latency' | 'bars'; unit: string; series: ChartSeries[] };
}
