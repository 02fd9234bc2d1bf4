// Pure: what the upgrade timer does after a check, under a policy.
import type { UpgradePolicy } from "./config.ts";

export interface AutoSteps {
  /** Stage what the registry has (policy stage or reboot). */
  stage: boolean;
  /** Reboot afterwards. Only when this run made a new deployment the next boot: an update that was
   *  staged earlier and fell back by boot counting must not reboot the machine on every timer run. */
  reboot: boolean;
}

export function autoSteps(policy: UpgradePolicy, applied: boolean): AutoSteps {
  return { stage: policy !== "check", reboot: policy === "reboot" && applied };
}
