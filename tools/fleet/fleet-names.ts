/** The group every fleet host belongs to and the service (container) its agent keeps running. */
export const FLEET_GROUP = 'app';
export const FLEET_SERVICE = 'app';
