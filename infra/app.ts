import { createProvisionerApp } from './provisioner-app';

createProvisionerApp().app.synth();
