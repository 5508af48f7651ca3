#!/usr/bin/env node
// The `gemini-proxy` command (package.json "bin"): the operator's CLI, run from its TypeScript source with
// tsx (a run-time dependency), so that `npx gemini-proxy` works after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../lambda/cli/main.ts');
await main();
