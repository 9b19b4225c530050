// Tells when the engine's containers may have changed, from its container events: the target
// resolver reuses its container list (and the host PIDs of containers) for as long as nothing
// changed, instead of for a second. Every exec after a quiet second used to list the containers
// again — and inspect the container, for the nsenter modes — before its 101. While the event
// stream is down, changes can go by unheard: `live` is false and the resolver falls back to its
// one-second reuse.
import type { EngineEventStream } from './engine-events.js';
import type { ContainerChangeFeed } from './types.js';

/**
 * The container events after which a list or a PID may be out of date: a container appeared,
 * started, stopped or restarted (a new PID), was paused or resumed, renamed, or removed.
 */
export const CONTAINER_CHANGE_ACTIONS = ['create', 'start', 'restart', 'die', 'stop', 'pause', 'unpause', 'rename', 'destroy'] as const;

export class ContainerChanges implements ContainerChangeFeed {
  #generation = 0;
  readonly #actions = new Set<string>(CONTAINER_CHANGE_ACTIONS);

  constructor(private readonly stream: EngineEventStream) {
    stream.listen({
      event: (event) => {
        if (event.Type === 'container' && event.Action !== undefined && this.#actions.has(event.Action)) this.#generation++;
      },
      stateChange: () => this.#generation++,
    });
  }

  /**
   * The engine contradicted a list (no such container, or not running, where the list said
   * running): an event went by unheard — the engine drops events for a subscriber that falls
   * behind without ending the stream — so whatever was learned before is not reused.
   */
  contradicted(): void {
    this.#generation++;
  }

  get live(): boolean {
    return this.stream.connected;
  }

  get generation(): number {
    return this.#generation;
  }
}
