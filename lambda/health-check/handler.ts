import { type HealthCheckEnv, HealthCheckRuntime } from './runtime.js';

interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

let runtime: HealthCheckRuntime | undefined;

/** EventBridge-scheduled entry: checks every key and reports counts as metrics. */
export const handler = async (_event: unknown, context: LambdaContext) => {
  runtime ??= new HealthCheckRuntime(process.env as HealthCheckEnv);
  return runtime.run(context.getRemainingTimeInMillis());
};
