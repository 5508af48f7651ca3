import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    // Hooks that synthesize the stack bundle with esbuild; CI also compiles the runtime client meanwhile.
    hookTimeout: 60_000,
    // Node 20 runs the tests here; Lambda runs 22/24. The SDK's notice about that is known, not news.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
