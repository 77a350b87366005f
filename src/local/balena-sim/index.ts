export { seedSchema } from './admin';
export { startBalenaSimulator } from './server';
export type {
  BalenaSimSeed,
  BalenaSimulator,
  FaultRule,
  SimDeviceSeed,
  SimFleetSeed,
  SimRequestLogEntry,
  SimUserSeed,
} from './types';
