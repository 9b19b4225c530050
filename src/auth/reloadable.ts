// An Authorizer whose policy can be swapped (SIGHUP) while sessions run: decisions already made
// stand, new requests see the new policy.
import type { AccessRequest, Authorizer, Decision, PolicyMode, PolicyTarget, Subject } from './policy.js';

export class ReloadableAuthorizer implements Authorizer {
  constructor(private current: Authorizer) {}

  replace(next: Authorizer): void {
    this.current = next;
  }

  decide(request: AccessRequest): Decision {
    return this.current.decide(request);
  }

  modesFor(subject: Subject, target: PolicyTarget): PolicyMode[] {
    return this.current.modesFor(subject, target);
  }
}
