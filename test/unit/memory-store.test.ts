import { MemoryKeyStateStore } from '../../lambda/adapters/memory-store.js';
import { keyStateStoreContract } from '../support/store-contract.js';

keyStateStoreContract('MemoryKeyStateStore', () => new MemoryKeyStateStore());
