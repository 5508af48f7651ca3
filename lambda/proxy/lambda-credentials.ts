/**
 * Credentials on Lambda: the runtime puts the function role's credentials in the environment, so the
 * SDK's full default chain (profiles, SSO, IMDS, …) is dead weight in the bundle. The CDK bundling
 * aliases `@aws-sdk/credential-provider-node` to this module; everything else in the SDK is unchanged.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';

export const defaultProvider = () => fromEnv();
