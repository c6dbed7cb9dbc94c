package service

// AccessRules exposes accessRules to the external tests of the package.
var AccessRules = accessRules
